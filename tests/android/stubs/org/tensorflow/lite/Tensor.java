package org.tensorflow.lite;

/** Compile-only stub of the LiteRT (org.tensorflow.lite) interface (signatures as documented). */
public interface Tensor {
    final class QuantizationParams {
        public float getScale() { return 0f; }
        public int getZeroPoint() { return 0; }
    }

    DataType dataType();
    int[] shape();
    int numBytes();
    QuantizationParams quantizationParams();
}
