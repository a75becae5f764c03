package android.media;

/** Compile-only stub of the Android SDK class (constants as documented). */
public final class AudioFormat {
    public static final int CHANNEL_IN_MONO = 16;
    public static final int ENCODING_PCM_16BIT = 2;
}
