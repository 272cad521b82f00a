package org.pytorch.executorch;

import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;

/**
 * Test stand-in with the public signatures of ExecuTorch's Tensor that the app uses, and its checks:
 * blobs must be direct, native-order buffers holding exactly numel(shape) elements.
 */
public class Tensor {
  private final long[] shape;
  private final float[] floats;
  private final long[] longs;

  private Tensor(long[] shape, float[] floats, long[] longs) {
    this.shape = shape.clone();
    this.floats = floats;
    this.longs = longs;
  }

  public static long numel(long[] shape) {
    long n = 1;
    for (long s : shape) {
      if (s < 0) {
        throw new IllegalArgumentException("Shape elements must be non negative");
      }
      n *= s;
    }
    return n;
  }

  public static Tensor fromBlob(float[] data, long[] shape) {
    check(data.length, shape);
    return new Tensor(shape, data.clone(), null);
  }

  public static Tensor fromBlob(FloatBuffer data, long[] shape) {
    checkBlob(data.isDirect(), data.order(), data.capacity(), shape);
    float[] copy = new float[data.capacity()];
    data.duplicate().get(copy);
    return new Tensor(shape, copy, null);
  }

  public static Tensor fromBlob(LongBuffer data, long[] shape) {
    checkBlob(data.isDirect(), data.order(), data.capacity(), shape);
    long[] copy = new long[data.capacity()];
    data.duplicate().get(copy);
    return new Tensor(shape, null, copy);
  }

  private static void checkBlob(boolean direct, ByteOrder order, int capacity, long[] shape) {
    if (!direct || order != ByteOrder.nativeOrder()) {
      throw new IllegalArgumentException("Data buffer must be direct with native byte order");
    }
    check(capacity, shape);
  }

  private static void check(int capacity, long[] shape) {
    if (capacity != numel(shape)) {
      throw new IllegalArgumentException("Inconsistent data capacity " + capacity + " and shape");
    }
  }

  public long[] shape() {
    return shape.clone();
  }

  public float[] getDataAsFloatArray() {
    if (floats == null) {
      throw new IllegalStateException("Tensor of type int64 cannot return data as float array.");
    }
    return floats.clone();
  }

  public long[] getDataAsLongArray() {
    if (longs == null) {
      throw new IllegalStateException("Tensor of type float32 cannot return data as long array.");
    }
    return longs.clone();
  }

  double[] valuesAsDoubles() {
    int n = floats != null ? floats.length : longs.length;
    double[] out = new double[n];
    for (int i = 0; i < n; i++) {
      out[i] = floats != null ? floats[i] : (double) longs[i];
    }
    return out;
  }
}
