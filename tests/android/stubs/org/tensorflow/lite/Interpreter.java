package org.tensorflow.lite;

/** Compile-only stub of the LiteRT (org.tensorflow.lite) class (signatures as documented). */
public final class Interpreter implements AutoCloseable {
    public static class Options {
        public Options setNumThreads(int numThreads) { return this; }
    }

    public Interpreter(java.nio.ByteBuffer byteBuffer, Options options) { }
    public Tensor getInputTensor(int inputIndex) { throw new UnsupportedOperationException("stub"); }
    public Tensor getOutputTensor(int outputIndex) { throw new UnsupportedOperationException("stub"); }
    public void run(Object input, Object output) { }
    @Override public void close() { }
}
