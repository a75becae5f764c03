package android.media;

/** Compile-only stub of the Android SDK class (constants as documented). */
public class MediaRecorder {
    public static final class AudioSource {
        public static final int VOICE_RECOGNITION = 6;
    }
}
