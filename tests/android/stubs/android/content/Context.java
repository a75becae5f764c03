package android.content;

/** Compile-only stub of the Android SDK class (signatures as documented). */
public abstract class Context {
    public abstract android.content.res.AssetManager getAssets();
}
