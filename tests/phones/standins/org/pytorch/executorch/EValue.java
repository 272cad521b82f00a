package org.pytorch.executorch;

/** Test stand-in with the public signatures of ExecuTorch's EValue that the app uses (tensor values). */
public class EValue {
  private final Tensor tensor;

  private EValue(Tensor tensor) {
    this.tensor = tensor;
  }

  public static EValue from(Tensor tensor) {
    return new EValue(tensor);
  }

  public boolean isTensor() {
    return tensor != null;
  }

  public Tensor toTensor() {
    return tensor;
  }
}
