package org.tensorflow.lite;

/** Compile-only stub of the LiteRT (org.tensorflow.lite) class (signatures as documented). */
public enum DataType { FLOAT32, INT32, UINT8, INT64, STRING, BOOL, INT16, INT8 }
