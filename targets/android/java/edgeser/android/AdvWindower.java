package edgeser.android;

/**
 * Windowing and number formats for an edgeser A/D/V model, with no Android imports (tested on the JVM).
 *
 * <p>Takes 16 kHz mono PCM in chunks of any size (16-bit from {@code AudioRecord}, or float), keeps the
 * last {@code windowSamples} samples in a ring buffer, and says when a new window is due: first when the
 * buffer is full, then every {@code hopSamples} samples. A push stops at the next window boundary and
 * returns how many samples it took, so no window is skipped however large the chunk:
 * <pre>
 * for (int done = 0; done &lt; n; ) {
 *     done += windower.pushPcm16(buffer, done, n - done);
 *     if (windower.ready()) run(windower.takeWindow());
 * }
 * </pre> The model itself normalises each window
 * (mean and variance), so the window is passed as plain float samples in -1..1. For a model with an int8
 * input or output, {@link #quantise} and {@link #dequantise} apply the tensor's scale and zero point.
 */
public final class AdvWindower {
    /** Sampling rate every edgeser model takes, in Hz. */
    public static final int SAMPLING_RATE_HZ = 16_000;
    /** Full scale of 16-bit PCM. */
    private static final float PCM16_FULL_SCALE = 32_768f;

    private final float[] ring;
    private final int windowSamples;
    private final int hopSamples;
    private int writeIndex;
    private long received;
    private long sinceLastWindow;

    /**
     * @param windowSamples samples per model input (the model's fixed input length, e.g. 32000 = 2 s)
     * @param hopSamples samples between two windows (e.g. 8000 = 0.5 s); at most {@code windowSamples}
     */
    public AdvWindower(int windowSamples, int hopSamples) {
        if (windowSamples <= 0) {
            throw new IllegalArgumentException("windowSamples must be positive, got " + windowSamples);
        }
        if (hopSamples <= 0 || hopSamples > windowSamples) {
            throw new IllegalArgumentException(
                "hopSamples must be in 1.." + windowSamples + ", got " + hopSamples);
        }
        this.ring = new float[windowSamples];
        this.windowSamples = windowSamples;
        this.hopSamples = hopSamples;
    }

    public int windowSamples() {
        return windowSamples;
    }

    public int hopSamples() {
        return hopSamples;
    }

    /**
     * Append up to {@code count} 16-bit PCM samples from {@code pcm[offset..]} (as AudioRecord.read fills
     * them), stopping at the next window boundary.
     *
     * @return samples taken: fewer than {@code count} when a window became due (take it, then push the rest);
     *     0 while a due window has not been taken
     */
    public int pushPcm16(short[] pcm, int offset, int count) {
        checkRange(pcm.length, offset, count);
        int n = Math.min(count, untilNextWindow());
        for (int i = 0; i < n; i++) {
            put(pcm[offset + i] / PCM16_FULL_SCALE);
        }
        return n;
    }

    /** Like {@link #pushPcm16} for float samples in -1..1. */
    public int pushFloat(float[] samples, int offset, int count) {
        checkRange(samples.length, offset, count);
        int n = Math.min(count, untilNextWindow());
        for (int i = 0; i < n; i++) {
            put(samples[offset + i]);
        }
        return n;
    }

    /** Samples still needed before the next window is due (0 while one is due and not taken). */
    public int untilNextWindow() {
        if (received < windowSamples) {
            return (int) (windowSamples - received);
        }
        return (int) Math.max(0, hopSamples - sinceLastWindow);
    }

    /** True when the buffer is full and at least one hop has arrived since the last window. */
    public boolean ready() {
        return received >= windowSamples && sinceLastWindow >= hopSamples;
    }

    /** The last {@code windowSamples} samples, oldest first; marks this window as taken. */
    public float[] takeWindow() {
        float[] out = new float[windowSamples];
        int head = windowSamples - writeIndex;  // samples from writeIndex to the end are the oldest
        System.arraycopy(ring, writeIndex, out, 0, head);
        System.arraycopy(ring, 0, out, head, writeIndex);
        sinceLastWindow = 0;
        return out;
    }

    /** Forget all audio (e.g. when the microphone restarts). */
    public void reset() {
        java.util.Arrays.fill(ring, 0f);
        writeIndex = 0;
        received = 0;
        sinceLastWindow = 0;
    }

    /** Float values to int8 with a tensor's scale and zero point (Math.round, then clamp to -128..127). */
    public static byte[] quantise(float[] x, float scale, int zeroPoint) {
        byte[] out = new byte[x.length];
        for (int i = 0; i < x.length; i++) {
            long q = Math.round(x[i] / scale) + zeroPoint;
            out[i] = (byte) Math.max(Byte.MIN_VALUE, Math.min(Byte.MAX_VALUE, q));
        }
        return out;
    }

    /** int8 values to float with a tensor's scale and zero point. */
    public static float[] dequantise(byte[] q, float scale, int zeroPoint) {
        float[] out = new float[q.length];
        for (int i = 0; i < q.length; i++) {
            out[i] = (q[i] - zeroPoint) * scale;
        }
        return out;
    }

    private void put(float sample) {
        ring[writeIndex] = sample;
        writeIndex = (writeIndex + 1) % windowSamples;
        received++;
        sinceLastWindow++;
    }

    private static void checkRange(int length, int offset, int count) {
        if (offset < 0 || count < 0 || offset + count > length) {
            throw new IndexOutOfBoundsException(
                "offset " + offset + " + count " + count + " outside an array of " + length);
        }
    }
}
