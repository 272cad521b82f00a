package org.pocketclip.bench;

import org.pocketclip.ExecuTorchBridge;

/** Times the bridge's Java side alone (no JNI crossing per call), to separate it from the round trip. */
public final class JavaOnly {
  private JavaOnly() {}

  /** Nanoseconds for `reps` image calls of ExecuTorchBridge.forwardFloats on a zero (1, 3, size, size) input. */
  public static long forwardFloatsNanos(String programPath, int size, int reps) {
    ExecuTorchBridge bridge = new ExecuTorchBridge(programPath);
    byte[] data = new byte[3 * size * size * 4];
    long[] shape = {1, 3, size, size};
    bridge.forwardFloats(data, shape);
    long start = System.nanoTime();
    for (int i = 0; i < reps; i++) {
      bridge.forwardFloats(data, shape);
    }
    long nanos = System.nanoTime() - start;
    bridge.destroy();
    return nanos;
  }
}
