package android.content.res;

/** Compile-only stub of the Android SDK class (signatures as documented). */
public final class AssetManager {
    public AssetFileDescriptor openFd(String fileName) throws java.io.IOException {
        throw new UnsupportedOperationException("stub");
    }

    public java.io.InputStream open(String fileName) throws java.io.IOException {
        throw new UnsupportedOperationException("stub");
    }
}
