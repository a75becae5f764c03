package android.content.res;

/** Compile-only stub of the Android SDK class (signatures as documented). */
public class AssetFileDescriptor implements java.io.Closeable {
    public java.io.FileDescriptor getFileDescriptor() { throw new UnsupportedOperationException("stub"); }
    public long getStartOffset() { return 0; }
    public long getDeclaredLength() { return 0; }
    @Override public void close() throws java.io.IOException { }
}
