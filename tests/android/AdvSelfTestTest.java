import edgeser.android.AdvSelfTest;

import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.List;
import java.util.Locale;

/**
 * JVM driver for {@link AdvSelfTest}, compared with Python's {@code edgeser.runtime.selftest.judge} by
 * tests/test_android_selftest.py:
 * <ul>
 * <li>{@code run BUNDLE ROWS}: a Predictor that returns the rows of the text file ROWS (one window per line,
 *     three numbers) in order; prints each window it was given ({@code window i sum first}), each result row
 *     ({@code row dimension ccc drop maxAbsVsFloat maxAbsVsBuild passed}, numbers in Java's round-trip form),
 *     {@code passed true|false} and the printable table after a {@code table} line;</li>
 * <li>{@code read BUNDLE}: {@code ok WINDOWS SAMPLES}, or {@code error: MESSAGE};</li>
 * <li>{@code format X...}: per number, the fixed (5 and 4 decimals) and general (3 and 6 digits) forms.</li>
 * </ul>
 * With no arguments it runs the checks that need no bundle.
 */
public final class AdvSelfTestTest {
    private static int passed;
    private static int failed;

    public static void main(String[] args) throws IOException {
        if (args.length > 0) {
            switch (args[0]) {
                case "run":
                    run(new File(args[1]), new File(args[2]));
                    return;
                case "read":
                    read(new File(args[1]));
                    return;
                case "format":
                    format(args);
                    return;
                default:
                    throw new IllegalArgumentException("unknown mode " + args[0]);
            }
        }
        badJsonIsRefused();
        badWavIsRefused();
        predictorMustReturnThreeValues();
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    private static void run(File bundle, File rowsFile) throws IOException {
        List<String> lines = Files.readAllLines(rowsFile.toPath(), StandardCharsets.UTF_8);
        AdvSelfTest check = AdvSelfTest.read(bundle);
        int[] next = {0};
        AdvSelfTest.Result result = check.evaluate(window -> {
            int i = next[0]++;
            double sum = 0;
            for (float v : window) {
                sum += v;
            }
            System.out.println("window " + i + " " + sum + " " + window[0]);
            String[] parts = lines.get(i).trim().split("\\s+");
            float[] out = new float[parts.length];
            for (int d = 0; d < parts.length; d++) {
                out[d] = Float.parseFloat(parts[d]);
            }
            return out;
        });
        for (AdvSelfTest.Row r : result.rows) {
            System.out.println("row " + r.dimension + " " + r.cccVsFloat + " " + r.drop + " " + r.maxAbsVsFloat + " "
                + r.maxAbsVsBuild + " " + r.passed());
        }
        System.out.println("passed " + result.passed());
        System.out.println("table");
        System.out.println(result.table());
    }

    private static void read(File bundle) {
        try {
            AdvSelfTest check = AdvSelfTest.read(bundle);
            System.out.println("ok " + check.windows() + " " + check.windowSamples());
        } catch (IOException exc) {
            System.out.println("error: " + exc.getMessage());
        }
    }

    private static void format(String[] args) {
        for (int i = 1; i < args.length; i++) {
            double x = Double.parseDouble(args[i]);
            System.out.println(String.join("|", fixed(x, 5), fixed(x, 4), general(x, 3), general(x, 6)));
        }
    }

    private static String fixed(double x, int decimals) {
        return call("fixed", x, decimals);
    }

    private static String general(double x, int precision) {
        return call("general", x, precision);
    }

    /** The package-private formatters, reached by reflection from the default package. */
    private static String call(String name, double x, int digits) {
        try {
            java.lang.reflect.Method m = AdvSelfTest.class.getDeclaredMethod(name, double.class, int.class);
            m.setAccessible(true);
            return (String) m.invoke(null, x, digits);
        } catch (ReflectiveOperationException exc) {
            throw new IllegalStateException(exc);
        }
    }

    private static void check(boolean ok, String what) {
        if (ok) {
            passed++;
        } else {
            failed++;
            System.out.println("FAILED: " + what);
        }
    }

    /** A valid 16-bit PCM mono WAV of {@code n} zero samples at {@code rate}. */
    private static byte[] wav(int n, int rate, int bits, int channels) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(44 + 2 * n).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.put("RIFF".getBytes(StandardCharsets.US_ASCII)).putInt(36 + 2 * n).put("WAVE".getBytes(StandardCharsets.US_ASCII));
        b.put("fmt ".getBytes(StandardCharsets.US_ASCII)).putInt(16).putShort((short) 1).putShort((short) channels)
            .putInt(rate).putInt(rate * 2).putShort((short) 2).putShort((short) bits);
        b.put("data".getBytes(StandardCharsets.US_ASCII)).putInt(2 * n);
        return b.array();
    }

    private static String json(String windows, String rows) {
        return "{\"windows\": " + windows + ", \"window_samples\": 2, \"variant\": \"int8\", \"budget\": "
            + "{\"max_ccc_drop\": 0.01, \"min_ccc_vs_float\": 0.98}, \"dimensions\": [\"arousal\", \"dominance\", "
            + "\"valence\"], \"float\": " + rows + ", \"teacher\": " + rows + ", \"shipped\": " + rows + "}";
    }

    private static String readError(byte[] wav, String json) {
        try {
            AdvSelfTest.read(new ByteArrayInputStream(wav), new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)));
            return null;
        } catch (IOException exc) {
            return exc.getMessage();
        }
    }

    private static void badJsonIsRefused() {
        String rows = "[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]";
        byte[] ok = wav(4, 16_000, 16, 1);
        check(readError(ok, json("2", rows)) == null, "a well-formed self-test reads");
        String[][] cases = {
            {json("2", rows) + ",", "unexpected text"},
            {json("2", "[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6],]"), "not valid JSON"},
            {json("2", "[[0.1, 0.2, NaN], [0.4, 0.5, 0.6]]"), "not valid JSON"},
            {json("2", "[[0.1, 0.2], [0.4, 0.5, 0.6]]"), "'float' is not 2 rows of 3 numbers"},
            {json("2", "[[0.1, 0.2, \"x\"], [0.4, 0.5, 0.6]]"), "'float' is not a number"},
            {json("3", "[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]]"), "3 windows of 2 samples"},
            {json("2.5", rows), "'windows' is not a whole number"},
            {json("2", rows).replace("\"budget\"", "\"budgets\""), "no 'budget'"},
            {json("2", rows).replace("\"dominance\"", "\"power\""), "'dimensions' is not"},
            {"[1, 2]", "not a JSON object"},
            {"{\"windows\": 2, \"windows\": 2}", "repeated key"},
        };
        for (String[] c : cases) {
            String error = readError(ok, c[0]);
            check(error != null && error.startsWith("selftest/expected.json: corrupt self-test")
                && error.contains(c[1]), "refused with '" + c[1] + "': " + error);
        }
    }

    private static void badWavIsRefused() {
        String json = json("2", "[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]");
        byte[] notRiff = wav(4, 16_000, 16, 1);
        notRiff[0] = 'X';
        byte[] truncated = java.util.Arrays.copyOf(wav(4, 16_000, 16, 1), 44 + 4);
        Object[][] cases = {
            {notRiff, "not a RIFF/WAVE file"},
            {wav(4, 16_000, 16, 2), "expected 16-bit PCM mono"},
            {wav(4, 16_000, 8, 1), "expected 16-bit PCM mono"},
            {wav(4, 8_000, 16, 1), "sampling rate 8000 Hz"},
            {truncated, "runs past the end"},
            {java.util.Arrays.copyOf(wav(0, 16_000, 16, 1), 36), "no data chunk"},
        };
        for (Object[] c : cases) {
            String error = readError((byte[]) c[0], json);
            check(error != null && error.startsWith("selftest/windows.wav: ") && error.contains((String) c[1]),
                "WAV refused with '" + c[1] + "': " + error);
        }
    }

    private static void predictorMustReturnThreeValues() throws IOException {
        AdvSelfTest check = AdvSelfTest.read(new ByteArrayInputStream(wav(4, 16_000, 16, 1)), new ByteArrayInputStream(
            json("2", "[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]").getBytes(StandardCharsets.UTF_8)));
        try {
            check.evaluate(window -> new float[2]);
            check(false, "a predictor returning 2 values is refused");
        } catch (IllegalStateException exc) {
            check(exc.getMessage().contains("returned 2 values"), "names the count: " + exc.getMessage());
        }
        AdvSelfTest.Result same = check.evaluate(window -> new float[] {0.5f, 0.5f, 0.5f});
        check(same.rows.size() == 3 && same.windows == 2 && "int8".equals(same.variant),
            "result carries rows, windows and variant");
        check(String.format(Locale.ROOT, "%s", same.table()).endsWith("self-test FAILED: this device's engine is over "
            + "the drift budget on the build's own windows"), "a constant output fails: " + same.table());
    }
}
