package edgeser.android;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The bundle's self-test on the JVM or in an app, with no Android imports: the build's held-out windows
 * ({@code selftest/windows.wav}, 16-bit PCM mono, the windows one after another) and what the build host
 * computed on exactly those samples ({@code selftest/expected.json}: the float model's, the teacher's
 * and the shipped model's arousal, dominance, valence), run again through the device's own engine.
 *
 * <pre>
 * AdvSelfTest check = AdvSelfTest.read(wavStream, jsonStream);
 * AdvSelfTest.Result result = check.evaluate(window -&gt; myModel.predict(window));  // 3 floats per window
 * if (!result.passed()) throw new IllegalStateException(result.table());
 * </pre>
 *
 * <p>Per dimension it computes CCC(device, float), the drop |CCC(device, teacher) - CCC(float, teacher)|,
 * and the largest absolute differences from the float model and from the build host's run of the shipped
 * model. A dimension passes when its outputs are finite, CCC(device, float) &gt;= the recipe's
 * {@code min_ccc_vs_float} and the drop &lt;= {@code max_ccc_drop}: the same verdict, numbers and table as
 * {@code python -m runner --self-test}. CCC is Lin's, with population moments; a column where both
 * inputs are constant and equal scores 1.
 */
public final class AdvSelfTest {
    /** The windows, inside a bundle. */
    public static final String AUDIO = "selftest/windows.wav";
    /** The expected outputs and the budget, inside a bundle. */
    public static final String EXPECTED = "selftest/expected.json";
    /** Outputs per window, in this order. */
    static final String[] DIMENSIONS = {"arousal", "dominance", "valence"};
    /** 16-bit PCM sample {@code k} decodes to {@code k / 32768} (as libsndfile and numpy read it). */
    private static final float PCM16_FULL_SCALE = 32_768f;
    private static final int WAVE_FORMAT_PCM = 1;
    private static final int WAVE_FORMAT_EXTENSIBLE = 0xFFFE;
    private static final int PCM16_BITS = 16;
    private static final int FMT_MIN_BYTES = 16;
    private static final int FMT_EXTENSIBLE_BYTES = 40;
    private static final int FMT_SUBFORMAT_OFFSET = 24;
    private static final int CHUNK_HEADER_BYTES = 8;
    private static final int RIFF_HEADER_BYTES = 12;

    /** Computes one window's A/D/V on this device (e.g. with the app's LiteRT Interpreter). */
    public interface Predictor {
        /**
         * @param window {@link #windowSamples()} float samples in -1..1
         * @return arousal, dominance, valence
         */
        float[] predict(float[] window);
    }

    private final float[][] windows;
    private final double[][] floatOut;
    private final double[][] teacherOut;
    private final double[][] buildOut;
    private final double maxCccDrop;
    private final double minCccVsFloat;
    private final String variant;

    private AdvSelfTest(float[][] windows, double[][] floatOut, double[][] teacherOut, double[][] buildOut,
                        double maxCccDrop, double minCccVsFloat, String variant) {
        this.windows = windows;
        this.floatOut = floatOut;
        this.teacherOut = teacherOut;
        this.buildOut = buildOut;
        this.maxCccDrop = maxCccDrop;
        this.minCccVsFloat = minCccVsFloat;
        this.variant = variant;
    }

    /** Read the self-test of an unpacked bundle folder ({@link #AUDIO} and {@link #EXPECTED} in it). */
    public static AdvSelfTest read(File bundle) throws IOException {
        try (InputStream wav = new FileInputStream(new File(bundle, AUDIO));
             InputStream json = new FileInputStream(new File(bundle, EXPECTED))) {
            return read(wav, json);
        }
    }

    /**
     * Read the self-test from two streams (e.g. an app's assets).
     *
     * @throws IOException a stream cannot be read, or a file is not what a bundle writes (the message names it)
     */
    public static AdvSelfTest read(InputStream wav, InputStream json) throws IOException {
        float[] samples = readPcm16Mono(readAll(wav));
        Map<String, Object> expected;
        try {
            Object root = new Json(new String(readAll(json), StandardCharsets.UTF_8)).document();
            if (!(root instanceof Map)) {
                throw new IllegalArgumentException("not a JSON object");
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> map = (Map<String, Object>) root;
            expected = map;
            int n = count(expected, "windows");
            int t = count(expected, "window_samples");
            if ((long) n * t != samples.length) {
                throw new IllegalArgumentException(n + " windows of " + t + " samples, but " + AUDIO + " holds "
                    + samples.length + " samples");
            }
            if (!Arrays.asList(DIMENSIONS).equals(field(expected, "dimensions"))) {
                throw new IllegalArgumentException("'dimensions' is not " + Arrays.toString(DIMENSIONS));
            }
            Map<?, ?> budget = asMap(field(expected, "budget"), "budget");
            Object name = expected.containsKey("variant") ? expected.get("variant") : "";
            if (!(name instanceof String)) {
                throw new IllegalArgumentException("'variant' is not a string");
            }
            float[][] windows = new float[n][];
            for (int i = 0; i < n; i++) {
                windows[i] = Arrays.copyOfRange(samples, i * t, (i + 1) * t);
            }
            return new AdvSelfTest(windows, rows(expected, "float", n), rows(expected, "teacher", n),
                rows(expected, "shipped", n), number(budget.get("max_ccc_drop"), "budget.max_ccc_drop"),
                number(budget.get("min_ccc_vs_float"), "budget.min_ccc_vs_float"), (String) name);
        } catch (IllegalArgumentException exc) {
            throw new IOException(EXPECTED + ": corrupt self-test (" + exc.getMessage() + ")");
        }
    }

    /** Number of stored windows. */
    public int windows() {
        return windows.length;
    }

    /** Samples per window (the model's input length). */
    public int windowSamples() {
        return windows.length == 0 ? 0 : windows[0].length;
    }

    /** A copy of stored window {@code i}, as float samples in -1..1. */
    public float[] window(int i) {
        return windows[i].clone();
    }

    /** The shipped variant's name, as the build recorded it. */
    public String variant() {
        return variant;
    }

    /** Run every stored window through {@code predictor}, in order, and judge the outputs. */
    public Result evaluate(Predictor predictor) {
        double[][] device = new double[windows.length][];
        for (int i = 0; i < windows.length; i++) {
            float[] out = predictor.predict(windows[i].clone());
            if (out == null || out.length != DIMENSIONS.length) {
                throw new IllegalStateException("the predictor returned " + (out == null ? "null" : out.length
                    + " values") + " for window " + i + "; expected " + DIMENSIONS.length);
            }
            device[i] = new double[DIMENSIONS.length];
            for (int d = 0; d < out.length; d++) {
                device[i][d] = out[d];
            }
        }
        return judge(device);
    }

    /** The verdict on the device's outputs for the stored windows ({@link #windows()} rows of 3). */
    public Result judge(double[][] device) {
        if (device.length != windows.length) {
            throw new IllegalArgumentException(device.length + " rows for " + windows.length + " windows");
        }
        double[] deviceVsFloat = ccc(device, floatOut);
        double[] deviceVsTeacher = ccc(device, teacherOut);
        double[] floatVsTeacher = ccc(floatOut, teacherOut);
        List<Row> rows = new ArrayList<>();
        for (int d = 0; d < DIMENSIONS.length; d++) {
            boolean finite = true;
            double vsFloat = 0;
            double vsBuild = 0;
            for (int i = 0; i < device.length; i++) {
                finite &= !Double.isNaN(device[i][d]) && !Double.isInfinite(device[i][d]);
                vsFloat = Math.max(vsFloat, Math.abs(device[i][d] - floatOut[i][d]));  // NaN stays NaN
                vsBuild = Math.max(vsBuild, Math.abs(device[i][d] - buildOut[i][d]));
            }
            double drop = Math.abs(deviceVsTeacher[d] - floatVsTeacher[d]);
            List<String> reasons = new ArrayList<>();
            if (!finite) {
                reasons.add("non-finite output");
            } else if (!(deviceVsFloat[d] >= minCccVsFloat)) {
                reasons.add("CCC(device, float) " + fixed(deviceVsFloat[d], 4) + " < " + general(minCccVsFloat, 6));
            }
            if (finite && !(drop <= maxCccDrop)) {
                reasons.add("drop " + fixed(drop, 4) + " > " + general(maxCccDrop, 6));
            }
            rows.add(new Row(DIMENSIONS[d], deviceVsFloat[d], drop, vsFloat, vsBuild, reasons));
        }
        return new Result(rows, windows.length, maxCccDrop, minCccVsFloat, variant);
    }

    /** Lin's concordance correlation coefficient per column, population moments (as numpy computes it). */
    static double[] ccc(double[][] x, double[][] y) {
        int n = x.length;
        if (n < 2 || y.length != n) {
            throw new IllegalArgumentException("expected two tables of N >= 2 equal rows, got " + n + " and " + y.length);
        }
        double[] out = new double[DIMENSIONS.length];
        for (int d = 0; d < out.length; d++) {
            double mx = 0;
            double my = 0;
            for (int i = 0; i < n; i++) {
                mx += x[i][d];
                my += y[i][d];
            }
            mx /= n;
            my /= n;
            double vx = 0;
            double vy = 0;
            double cov = 0;
            for (int i = 0; i < n; i++) {
                double dx = x[i][d] - mx;
                double dy = y[i][d] - my;
                vx += dx * dx;
                vy += dy * dy;
                cov += dx * dy;
            }
            double den = vx / n + vy / n + (mx - my) * (mx - my);
            out[d] = den > 0 ? 2 * (cov / n) / den : 1.0;  // NaN den: 1.0, as numpy's where(den > 0, ...)
        }
        return out;
    }

    /** One dimension of the self-test. */
    public static final class Row {
        public final String dimension;
        /** CCC(device, float). */
        public final double cccVsFloat;
        /** |CCC(device, teacher) - CCC(float, teacher)|. */
        public final double drop;
        /** Largest |device - float| over the windows. */
        public final double maxAbsVsFloat;
        /** Largest |device - build host's run of the shipped model| over the windows. */
        public final double maxAbsVsBuild;
        /** Why this dimension fails (empty when it passes). */
        public final List<String> reasons;

        Row(String dimension, double cccVsFloat, double drop, double maxAbsVsFloat, double maxAbsVsBuild,
            List<String> reasons) {
            this.dimension = dimension;
            this.cccVsFloat = cccVsFloat;
            this.drop = drop;
            this.maxAbsVsFloat = maxAbsVsFloat;
            this.maxAbsVsBuild = maxAbsVsBuild;
            this.reasons = Collections.unmodifiableList(reasons);
        }

        public boolean passed() {
            return reasons.isEmpty();
        }
    }

    /** What the self-test measured on this device, and its verdict. */
    public static final class Result {
        public final List<Row> rows;
        public final int windows;
        public final double maxCccDrop;
        public final double minCccVsFloat;
        public final String variant;

        Result(List<Row> rows, int windows, double maxCccDrop, double minCccVsFloat, String variant) {
            this.rows = Collections.unmodifiableList(rows);
            this.windows = windows;
            this.maxCccDrop = maxCccDrop;
            this.minCccVsFloat = minCccVsFloat;
            this.variant = variant;
        }

        /** True when every dimension passes. */
        public boolean passed() {
            for (Row r : rows) {
                if (!r.passed()) {
                    return false;
                }
            }
            return true;
        }

        /** The table {@code python -m runner --self-test} prints, line by line, ending with the verdict. */
        public List<String> lines() {
            List<String> out = new ArrayList<>();
            out.add("self-test: " + windows + " held-out windows, shipped variant " + variant + ", budget: "
                + "CCC(device, float) >= " + general(minCccVsFloat, 6)
                + ", |CCC(device, teacher) - CCC(float, teacher)| <= " + general(maxCccDrop, 6));
            out.add(String.format(Locale.ROOT, "%-10s %14s %8s %15s %15s  ok", "dimension", "CCC(dev,float)", "drop",
                "max|dev-float|", "max|dev-build|"));
            for (Row r : rows) {
                out.add(String.format(Locale.ROOT, "%-10s %14s %8s %15s %15s  %s", r.dimension, fixed(r.cccVsFloat, 5),
                    fixed(r.drop, 5), general(r.maxAbsVsFloat, 3), general(r.maxAbsVsBuild, 3),
                    r.passed() ? "yes" : "NO: " + join("; ", r.reasons)));
            }
            out.add(passed() ? "self-test PASSED" : "self-test FAILED: this device's engine is over the drift budget "
                + "on the build's own windows");
            return out;
        }

        /** {@link #lines()} joined with newlines, for a log or an exception message. */
        public String table() {
            return join("\n", lines());
        }
    }

    /** {@code parts} joined by {@code separator} (String.join needs Android API 26). */
    private static String join(String separator, List<String> parts) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < parts.size(); i++) {
            out.append(i == 0 ? "" : separator).append(parts.get(i));
        }
        return out.toString();
    }

    /** {@code x} with {@code decimals} digits after the point, rounded as Python's {@code '.Nf'} does. */
    static String fixed(double x, int decimals) {
        if (Double.isNaN(x) || Double.isInfinite(x)) {
            return special(x);
        }
        return signed(x, new BigDecimal(x).setScale(decimals, RoundingMode.HALF_EVEN).toPlainString());
    }

    /** {@code x} in Python's general format {@code '.Ng'}: N significant digits, trailing zeros dropped. */
    static String general(double x, int precision) {
        if (Double.isNaN(x) || Double.isInfinite(x)) {
            return special(x);
        }
        if (x == 0) {
            return signed(x, "0");
        }
        BigDecimal b = new BigDecimal(x).round(new MathContext(precision, RoundingMode.HALF_EVEN));
        int exponent = b.precision() - b.scale() - 1;
        if (exponent >= -4 && exponent < precision) {
            return b.stripTrailingZeros().toPlainString();
        }
        String mantissa = b.movePointLeft(exponent).stripTrailingZeros().toPlainString();
        return String.format(Locale.ROOT, "%se%s%02d", mantissa, exponent < 0 ? "-" : "+", Math.abs(exponent));
    }

    private static String special(double x) {
        return Double.isNaN(x) ? "nan" : x > 0 ? "inf" : "-inf";
    }

    private static String signed(double x, String text) {
        boolean negative = x < 0 || (x == 0 && 1 / x < 0);
        return negative && !text.startsWith("-") ? "-" + text : text;
    }

    private static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buffer = new byte[1 << 16];
        for (int n; (n = in.read(buffer)) > 0; ) {
            out.write(buffer, 0, n);
        }
        return out.toByteArray();
    }

    /** The samples of a RIFF/WAVE file holding 16-bit PCM mono at {@link AdvWindower#SAMPLING_RATE_HZ}. */
    static float[] readPcm16Mono(byte[] bytes) throws IOException {
        ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (bytes.length < RIFF_HEADER_BYTES || !tag(bytes, 0).equals("RIFF") || !tag(bytes, 8).equals("WAVE")) {
            throw wavError("not a RIFF/WAVE file");
        }
        long end = Math.min(bytes.length, (buf.getInt(4) & 0xFFFFFFFFL) + CHUNK_HEADER_BYTES);
        boolean format = false;
        for (long pos = RIFF_HEADER_BYTES; pos + CHUNK_HEADER_BYTES <= end; ) {
            String id = tag(bytes, (int) pos);
            long size = buf.getInt((int) pos + 4) & 0xFFFFFFFFL;
            int body = (int) pos + CHUNK_HEADER_BYTES;
            if (body + size > end) {
                throw wavError("chunk '" + id + "' runs past the end of the file");
            }
            if (id.equals("fmt ")) {
                checkFormat(buf, body, (int) size);
                format = true;
            } else if (id.equals("data")) {
                if (!format) {
                    throw wavError("the data chunk comes before the fmt chunk");
                }
                if (size % 2 != 0) {
                    throw wavError("the data chunk holds an odd number of bytes");
                }
                float[] samples = new float[(int) (size / 2)];
                for (int i = 0; i < samples.length; i++) {
                    samples[i] = buf.getShort(body + 2 * i) / PCM16_FULL_SCALE;
                }
                return samples;
            }
            pos = body + size + (size & 1);  // chunks are padded to an even length
        }
        throw wavError(format ? "no data chunk" : "no fmt chunk");
    }

    private static void checkFormat(ByteBuffer buf, int body, int size) throws IOException {
        if (size < FMT_MIN_BYTES) {
            throw wavError("fmt chunk of " + size + " bytes");
        }
        int code = buf.getShort(body) & 0xFFFF;
        if (code == WAVE_FORMAT_EXTENSIBLE && size >= FMT_EXTENSIBLE_BYTES) {
            code = buf.getShort(body + FMT_SUBFORMAT_OFFSET) & 0xFFFF;
        }
        int channels = buf.getShort(body + 2) & 0xFFFF;
        int rate = buf.getInt(body + 4);
        int bits = buf.getShort(body + 14) & 0xFFFF;
        if (code != WAVE_FORMAT_PCM || bits != PCM16_BITS || channels != 1) {
            throw wavError("expected 16-bit PCM mono, got format " + code + ", " + bits + " bits, " + channels
                + " channel(s)");
        }
        if (rate != AdvWindower.SAMPLING_RATE_HZ) {
            throw wavError("sampling rate " + rate + " Hz, expected " + AdvWindower.SAMPLING_RATE_HZ);
        }
    }

    private static String tag(byte[] bytes, int at) {
        return new String(bytes, at, 4, StandardCharsets.US_ASCII);
    }

    private static IOException wavError(String problem) {
        return new IOException(AUDIO + ": " + problem);
    }

    private static Object field(Map<String, Object> map, String key) {
        if (!map.containsKey(key)) {
            throw new IllegalArgumentException("no '" + key + "'");
        }
        return map.get(key);
    }

    private static Map<?, ?> asMap(Object value, String key) {
        if (!(value instanceof Map)) {
            throw new IllegalArgumentException("'" + key + "' is not an object");
        }
        return (Map<?, ?>) value;
    }

    private static double number(Object value, String key) {
        if (!(value instanceof Double)) {
            throw new IllegalArgumentException("'" + key + "' is not a number");
        }
        return (Double) value;
    }

    private static int count(Map<String, Object> map, String key) {
        double v = number(field(map, key), key);
        if (!(v >= 2 && v <= Integer.MAX_VALUE && v == Math.rint(v))) {
            throw new IllegalArgumentException("'" + key + "' is not a whole number >= 2");
        }
        return (int) v;
    }

    private static double[][] rows(Map<String, Object> map, String key, int n) {
        Object value = field(map, key);
        String shape = "'" + key + "' is not " + n + " rows of " + DIMENSIONS.length + " numbers";
        if (!(value instanceof List) || ((List<?>) value).size() != n) {
            throw new IllegalArgumentException(shape);
        }
        double[][] out = new double[n][DIMENSIONS.length];
        for (int i = 0; i < n; i++) {
            Object row = ((List<?>) value).get(i);
            if (!(row instanceof List) || ((List<?>) row).size() != DIMENSIONS.length) {
                throw new IllegalArgumentException(shape);
            }
            for (int d = 0; d < DIMENSIONS.length; d++) {
                out[i][d] = number(((List<?>) row).get(d), key);
            }
        }
        return out;
    }

    /** A small strict JSON reader (RFC 8259: no NaN, no trailing commas): objects, arrays, numbers, strings. */
    private static final class Json {
        private final String text;
        private int at;

        Json(String text) {
            this.text = text;
        }

        Object document() {
            Object value = value();
            skipSpace();
            if (at != text.length()) {
                throw error("unexpected text");
            }
            return value;
        }

        private Object value() {
            skipSpace();
            if (at >= text.length()) {
                throw error("unexpected end");
            }
            char c = text.charAt(at);
            if (c == '{') {
                return object();
            }
            if (c == '[') {
                return array();
            }
            if (c == '"') {
                return string();
            }
            for (String word : new String[] {"true", "false", "null"}) {
                if (text.startsWith(word, at)) {
                    at += word.length();
                    return word.equals("null") ? null : Boolean.valueOf(word.equals("true"));
                }
            }
            return number();
        }

        private Map<String, Object> object() {
            Map<String, Object> out = new LinkedHashMap<>();
            at++;
            if (peek() == '}') {
                at++;
                return out;
            }
            while (true) {
                skipSpace();
                if (at >= text.length() || text.charAt(at) != '"') {
                    throw error("expected a key");
                }
                String key = string();
                if (peek() != ':') {
                    throw error("expected ':'");
                }
                at++;
                if (out.containsKey(key)) {
                    throw error("repeated key '" + key + "'");
                }
                out.put(key, value());
                char next = peek();
                at++;
                if (next == '}') {
                    return out;
                }
                if (next != ',') {
                    throw error("expected ',' or '}'");
                }
            }
        }

        private List<Object> array() {
            List<Object> out = new ArrayList<>();
            at++;
            if (peek() == ']') {
                at++;
                return out;
            }
            while (true) {
                out.add(value());
                char next = peek();
                at++;
                if (next == ']') {
                    return out;
                }
                if (next != ',') {
                    throw error("expected ',' or ']'");
                }
            }
        }

        private String string() {
            StringBuilder out = new StringBuilder();
            at++;
            while (at < text.length()) {
                char c = text.charAt(at++);
                if (c == '"') {
                    return out.toString();
                }
                if (c < 0x20) {
                    throw error("control character in a string");
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                char e = at < text.length() ? text.charAt(at++) : '?';
                int simple = "\"\\/bfnrt".indexOf(e);
                if (simple >= 0) {
                    out.append("\"\\/\b\f\n\r\t".charAt(simple));
                } else if (e == 'u' && at + 4 <= text.length()) {
                    try {
                        out.append((char) Integer.parseInt(text.substring(at, at + 4), 16));
                    } catch (NumberFormatException exc) {
                        throw error("bad \\u escape");
                    }
                    at += 4;
                } else {
                    throw error("bad escape");
                }
            }
            throw error("unterminated string");
        }

        private Double number() {
            int start = at;
            if (peekRaw() == '-') {
                at++;
            }
            if (peekRaw() == '0') {
                at++;
            } else if (!digits()) {
                throw error("expected a value");
            }
            if (peekRaw() == '.') {
                at++;
                if (!digits()) {
                    throw error("expected digits after '.'");
                }
            }
            if (peekRaw() == 'e' || peekRaw() == 'E') {
                at++;
                if (peekRaw() == '+' || peekRaw() == '-') {
                    at++;
                }
                if (!digits()) {
                    throw error("expected an exponent");
                }
            }
            double v = Double.parseDouble(text.substring(start, at));
            if (Double.isInfinite(v)) {
                throw error("number out of range");
            }
            return v;
        }

        private boolean digits() {
            int start = at;
            while (at < text.length() && text.charAt(at) >= '0' && text.charAt(at) <= '9') {
                at++;
            }
            return at > start;
        }

        private char peekRaw() {
            return at < text.length() ? text.charAt(at) : '\0';
        }

        private char peek() {
            skipSpace();
            return peekRaw();
        }

        private void skipSpace() {
            while (at < text.length() && " \t\r\n".indexOf(text.charAt(at)) >= 0) {
                at++;
            }
        }

        private IllegalArgumentException error(String problem) {
            return new IllegalArgumentException("not valid JSON: " + problem + " at character " + at);
        }
    }
}
