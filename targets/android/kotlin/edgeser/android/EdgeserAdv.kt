package edgeser.android

import android.annotation.SuppressLint
import android.content.Context
import android.media.AudioFormat
import android.media.AudioRecord
import android.media.MediaRecorder
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/** One prediction: arousal, dominance, valence (trained towards 0..1), and when its window ended. */
data class Adv(val arousal: Float, val dominance: Float, val valence: Float, val endSample: Long)

/**
 * Speech emotion (arousal, dominance, valence) from the microphone with an edgeser `model.tflite`.
 *
 * AudioRecord delivers 16 kHz mono 16-bit PCM; [AdvWindower] keeps the last window (the model's fixed
 * input, e.g. 2 s) in a ring buffer and says when one is due (every [hopMs]); the LiteRT Interpreter
 * runs once per window. The model normalises each window itself. int8 inputs and outputs are
 * (de)quantised with the tensor's own scale and zero point. Not thread-safe: one instance per stream.
 *
 * ```
 * val adv = EdgeserAdv.fromAsset(context)          // assets/model.tflite from the edgeser bundle
 * check(adv.selfTest(context).passed())           // assets/selftest/ from the same bundle
 * adv.start { r -> runOnUiThread { show(r) } }     // needs the RECORD_AUDIO permission
 * ...
 * adv.close()
 * ```
 */
class EdgeserAdv(model: MappedByteBuffer, hopMs: Int = DEFAULT_HOP_MS, threads: Int = 1) : AutoCloseable {
    private val interpreter = Interpreter(model, Interpreter.Options().setNumThreads(threads))
    private val input = interpreter.getInputTensor(0)
    private val output = interpreter.getOutputTensor(0)
    private val inputBuffer: ByteBuffer
    private val outputBuffer: ByteBuffer

    /** Samples per model input (from the model's fixed input shape, [1, windowSamples]). */
    val windowSamples: Int

    /** The ring buffer and window clock; [predict] can also be fed windows directly. */
    val windower: AdvWindower

    @Volatile
    private var running = false
    private var worker: Thread? = null
    private var samplesSeen = 0L

    init {
        val shape = input.shape()
        require(shape.size == 2 && shape[0] == 1) {
            "model input is ${shape.contentToString()}: expected [1, samples] (an android build takes the " +
                "waveform; coral builds compute the log-mel on the CPU and are not for this class)"
        }
        require(input.dataType() == DataType.FLOAT32 || input.dataType() == DataType.INT8) {
            "model input type ${input.dataType()} is not supported (float32 or int8)"
        }
        windowSamples = shape[1]
        windower = AdvWindower(windowSamples, hopMs * AdvWindower.SAMPLING_RATE_HZ / MS_PER_S)
        inputBuffer = ByteBuffer.allocateDirect(input.numBytes()).order(ByteOrder.nativeOrder())
        outputBuffer = ByteBuffer.allocateDirect(output.numBytes()).order(ByteOrder.nativeOrder())
    }

    /** Run the model on one window of [windowSamples] float samples in -1..1. */
    fun predict(window: FloatArray, endSample: Long = 0L): Adv {
        require(window.size == windowSamples) { "window has ${window.size} samples, the model takes $windowSamples" }
        inputBuffer.rewind()
        if (input.dataType() == DataType.INT8) {
            val q = input.quantizationParams()
            inputBuffer.put(AdvWindower.quantise(window, q.scale, q.zeroPoint))
        } else {
            inputBuffer.asFloatBuffer().put(window)
        }
        inputBuffer.rewind()
        outputBuffer.rewind()
        interpreter.run(inputBuffer, outputBuffer)
        outputBuffer.rewind()
        val values = if (output.dataType() == DataType.INT8) {
            val q = output.quantizationParams()
            val raw = ByteArray(OUTPUTS)
            outputBuffer.get(raw)
            AdvWindower.dequantise(raw, q.scale, q.zeroPoint)
        } else {
            FloatArray(OUTPUTS).also { outputBuffer.asFloatBuffer().get(it) }
        }
        return Adv(values[0], values[1], values[2], endSample)
    }

    /**
     * Run the bundle's self-test through this interpreter: the build's held-out windows (`selftest/` in the
     * bundle, copied into the app's assets) must give the float model's outputs within the recipe's drift
     * budget. Call it once before [start] (a debug build, or the first start) and do not use the model when
     * the result has `passed() == false`; `result.table()` says which dimension failed and by how much.
     *
     * @throws java.io.IOException the self-test files are missing from the assets or damaged
     */
    fun selfTest(context: Context, folder: String = SELFTEST_ASSETS): AdvSelfTest.Result {
        check(!running) { "stop the microphone before the self-test (one interpreter, one caller)" }
        val selfTest = context.assets.open("$folder/$SELFTEST_AUDIO").use { wav ->
            context.assets.open("$folder/$SELFTEST_EXPECTED").use { json -> AdvSelfTest.read(wav, json) }
        }
        check(selfTest.windowSamples() == windowSamples) {
            "the self-test's windows have ${selfTest.windowSamples()} samples, this model takes $windowSamples: " +
                "the assets come from different bundles"
        }
        return selfTest.evaluate { window -> predict(window).let { floatArrayOf(it.arousal, it.dominance, it.valence) } }
    }

    /**
     * Record from the microphone on a background thread and call [onResult] (on that thread) per window.
     * The caller must hold RECORD_AUDIO; the result is delivered every [hopMs] once the first window is full.
     */
    @SuppressLint("MissingPermission")
    fun start(onResult: (Adv) -> Unit) {
        check(!running) { "already started" }
        val rate = AdvWindower.SAMPLING_RATE_HZ
        val minBytes = AudioRecord.getMinBufferSize(rate, AudioFormat.CHANNEL_IN_MONO, AudioFormat.ENCODING_PCM_16BIT)
        check(minBytes > 0) { "this device cannot record 16 kHz mono 16-bit PCM (getMinBufferSize: $minBytes)" }
        val chunk = maxOf(minBytes / BYTES_PER_SAMPLE, READ_SAMPLES)
        val record = AudioRecord(MediaRecorder.AudioSource.VOICE_RECOGNITION, rate, AudioFormat.CHANNEL_IN_MONO,
            AudioFormat.ENCODING_PCM_16BIT, chunk * BYTES_PER_SAMPLE * 2)
        check(record.state == AudioRecord.STATE_INITIALIZED) { "AudioRecord did not initialise (permission?)" }
        windower.reset()
        samplesSeen = 0L
        running = true
        worker = Thread({ loop(record, ShortArray(chunk), onResult) }, "edgeser-audio").also { it.start() }
    }

    private fun loop(record: AudioRecord, buffer: ShortArray, onResult: (Adv) -> Unit) {
        record.startRecording()
        try {
            while (running) {
                val n = record.read(buffer, 0, buffer.size)
                if (n < 0) break  // ERROR_INVALID_OPERATION, ERROR_DEAD_OBJECT ...
                var done = 0
                while (done < n) {
                    val taken = windower.pushPcm16(buffer, done, n - done)
                    done += taken
                    samplesSeen += taken
                    if (windower.ready()) onResult(predict(windower.takeWindow(), samplesSeen))
                }
            }
        } finally {
            record.stop()
            record.release()
        }
    }

    /** Stop recording and wait for the audio thread. */
    fun stop() {
        running = false
        worker?.join()
        worker = null
    }

    override fun close() {
        stop()
        interpreter.close()
    }

    companion object {
        /** Time between two results once the first window is full. */
        const val DEFAULT_HOP_MS = 500
        private const val MS_PER_S = 1000
        private const val OUTPUTS = 3
        private const val BYTES_PER_SAMPLE = 2
        private const val READ_SAMPLES = 1024

        /** Assets folder holding the bundle's `selftest/` files (`windows.wav`, `expected.json`). */
        const val SELFTEST_ASSETS = "selftest"
        private const val SELFTEST_AUDIO = "windows.wav"
        private const val SELFTEST_EXPECTED = "expected.json"

        /** Load `assets/<name>` (keep it uncompressed: `androidResources { noCompress += "tflite" }`). */
        fun fromAsset(context: Context, name: String = "model.tflite", hopMs: Int = DEFAULT_HOP_MS,
                      threads: Int = 1): EdgeserAdv {
            context.assets.openFd(name).use { fd ->
                FileInputStream(fd.fileDescriptor).use { stream ->
                    val model = stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                    return EdgeserAdv(model, hopMs, threads)
                }
            }
        }
    }
}
