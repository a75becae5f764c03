import edgeser.android.AdvWindower;

import java.io.DataInputStream;
import java.io.FileInputStream;
import java.io.IOException;
import java.util.Arrays;
import java.util.Locale;

/**
 * JVM checks of {@link AdvWindower} (no Android needed): {@code java AdvWindowerTest} runs the checks;
 * {@code java AdvWindowerTest dump FILE WINDOW HOP CHUNK} streams little-endian int16 PCM from FILE in
 * CHUNK-sample reads and prints one line per window (index, first sample, sum) for a comparison with numpy.
 */
public final class AdvWindowerTest {
    private static int passed;
    private static int failed;

    public static void main(String[] args) throws IOException {
        if (args.length > 0 && args[0].equals("dump")) {
            dump(args[1], Integer.parseInt(args[2]), Integer.parseInt(args[3]), Integer.parseInt(args[4]));
            return;
        }
        windowsFollowTheHop();
        chunkSizeDoesNotMatter();
        quantisationRoundTrips();
        badArgumentsAreRejected();
        resetForgetsAudio();
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    private static void check(boolean ok, String what) {
        if (ok) {
            passed++;
        } else {
            failed++;
            System.out.println("FAILED: " + what);
        }
    }

    private static short[] ramp(int n) {
        short[] pcm = new short[n];
        for (int i = 0; i < n; i++) {
            pcm[i] = (short) (i + 1);
        }
        return pcm;
    }

    private static void windowsFollowTheHop() {
        AdvWindower w = new AdvWindower(4, 2);
        short[] pcm = ramp(8);
        w.pushPcm16(pcm, 0, 3);
        check(!w.ready(), "not ready before a full window");
        w.pushPcm16(pcm, 3, 1);
        check(w.ready(), "ready at a full window");
        float[] first = w.takeWindow();
        check(Arrays.equals(first, new float[] {1 / 32768f, 2 / 32768f, 3 / 32768f, 4 / 32768f}), "first window");
        check(!w.ready(), "not ready right after taking a window");
        w.pushPcm16(pcm, 4, 1);
        check(!w.ready(), "not ready before a hop");
        w.pushPcm16(pcm, 5, 1);
        float[] second = w.takeWindow();
        check(Arrays.equals(second, new float[] {3 / 32768f, 4 / 32768f, 5 / 32768f, 6 / 32768f}), "second window");
    }

    private static void chunkSizeDoesNotMatter() {
        short[] pcm = ramp(1000);
        java.util.List<float[]> a = allWindows(pcm, 1);
        java.util.List<float[]> b = allWindows(pcm, 37);
        java.util.List<float[]> c = allWindows(pcm, 1000);
        check(a.size() == 22, "(1000 - 160) / 40 + 1 windows, got " + a.size());
        boolean same = a.size() == b.size() && b.size() == c.size();
        for (int i = 0; same && i < a.size(); i++) {
            same = Arrays.equals(a.get(i), b.get(i)) && Arrays.equals(b.get(i), c.get(i));
        }
        check(same, "same windows for chunks of 1, 37 and 1000");
    }

    private static java.util.List<float[]> allWindows(short[] pcm, int chunk) {
        AdvWindower w = new AdvWindower(160, 40);
        java.util.List<float[]> out = new java.util.ArrayList<>();
        for (int i = 0; i < pcm.length; i += chunk) {
            int end = Math.min(pcm.length, i + chunk);
            for (int done = i; done < end; ) {
                done += w.pushPcm16(pcm, done, end - done);
                if (w.ready()) {
                    out.add(w.takeWindow());
                }
            }
        }
        return out;
    }

    private static void quantisationRoundTrips() {
        float scale = 0.01f;
        int zero = -3;
        float[] x = {-0.5f, 0f, 0.123f, 1.2f, 5f, -5f};
        byte[] q = AdvWindower.quantise(x, scale, zero);
        float[] back = AdvWindower.dequantise(q, scale, zero);
        check(Math.abs(back[2] - 0.123f) <= scale / 2 + 1e-6f, "round trip within half a step");
        check(q[4] == Byte.MAX_VALUE && q[5] == Byte.MIN_VALUE, "clamped to int8");
        check(AdvWindower.dequantise(new byte[] {(byte) zero}, scale, zero)[0] == 0f, "zero point is 0.0");
    }

    private static void badArgumentsAreRejected() {
        check(throwsOn(() -> new AdvWindower(0, 1)), "window 0 rejected");
        check(throwsOn(() -> new AdvWindower(4, 5)), "hop longer than the window rejected");
        check(throwsOn(() -> new AdvWindower(4, 2).pushPcm16(new short[3], 2, 2)), "out-of-range chunk rejected");
    }

    private static void resetForgetsAudio() {
        AdvWindower w = new AdvWindower(4, 4);
        w.pushPcm16(ramp(4), 0, 4);
        w.reset();
        check(!w.ready(), "not ready after reset");
    }

    private static boolean throwsOn(Runnable r) {
        try {
            r.run();
            return false;
        } catch (IllegalArgumentException | IndexOutOfBoundsException e) {
            return true;
        }
    }

    private static void dump(String file, int window, int hop, int chunk) throws IOException {
        AdvWindower w = new AdvWindower(window, hop);
        byte[] raw;
        try (DataInputStream in = new DataInputStream(new FileInputStream(file))) {
            raw = in.readAllBytes();
        }
        short[] pcm = new short[raw.length / 2];
        for (int i = 0; i < pcm.length; i++) {
            pcm[i] = (short) ((raw[2 * i] & 0xff) | (raw[2 * i + 1] << 8));
        }
        int index = 0;
        for (int i = 0; i < pcm.length; i += chunk) {
            int end = Math.min(pcm.length, i + chunk);
            for (int done = i; done < end; ) {
                done += w.pushPcm16(pcm, done, end - done);
                if (!w.ready()) {
                    continue;
                }
                float[] x = w.takeWindow();
                double sum = 0;
                for (float v : x) {
                    sum += v;
                }
                System.out.println(String.format(Locale.ROOT, "%d %.9e %.9e", index++, x[0], sum));
            }
        }
    }
}
