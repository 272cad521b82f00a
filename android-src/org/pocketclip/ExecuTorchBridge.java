package org.pocketclip;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.pytorch.executorch.EValue;
import org.pytorch.executorch.Module;
import org.pytorch.executorch.Tensor;

/**
 * One ExecuTorch program, called from Python (pyjnius) with primitive arrays only.
 *
 * <p>Why a Java class: pyjnius looks classes up with JNI FindClass, which on a thread that Python
 * started (the app's indexer and engine threads) sees only the system class loader, not the APK's
 * classes; and calling Module.forward(EValue...) from Python converts the varargs array with such a
 * lookup on every call. Here the Java code resolves EValue, Tensor and Module through its own class
 * loader, and Python passes byte[] and long[] (no class lookup). Python resolves this class once, on
 * the main thread (app.engine.runtimes.android.resolve_java_classes).
 */
public final class ExecuTorchBridge {
  private Module module;

  public ExecuTorchBridge(String programPath) {
    module = Module.load(programPath);
  }

  /** Runs the program on a float32 tensor given as native-order bytes; returns its first output. */
  public float[] forwardFloats(byte[] nativeOrderFloats, long[] shape) {
    ByteBuffer buffer = direct(nativeOrderFloats);
    return run(Tensor.fromBlob(buffer.asFloatBuffer(), shape));
  }

  /** Runs the program on an int64 tensor given as native-order bytes; returns its first output. */
  public float[] forwardLongs(byte[] nativeOrderLongs, long[] shape) {
    ByteBuffer buffer = direct(nativeOrderLongs);
    return run(Tensor.fromBlob(buffer.asLongBuffer(), shape));
  }

  public void destroy() {
    if (module != null) {
      module.destroy();
      module = null;
    }
  }

  private float[] run(Tensor input) {
    if (module == null) {
      throw new IllegalStateException("the ExecuTorch program was already destroyed");
    }
    EValue[] outputs = module.forward(EValue.from(input));
    return outputs[0].toTensor().getDataAsFloatArray();
  }

  private static ByteBuffer direct(byte[] data) {
    ByteBuffer buffer = ByteBuffer.allocateDirect(data.length).order(ByteOrder.nativeOrder());
    buffer.put(data);
    buffer.rewind();
    return buffer;
  }
}
