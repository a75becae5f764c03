package android.annotation;

/** Compile-only stub of the Android SDK class (signatures as documented), for tests/test_android_windower.py. */
public @interface SuppressLint {
    String[] value();
}
