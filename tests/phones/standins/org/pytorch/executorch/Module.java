package org.pytorch.executorch;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;

/**
 * Test stand-in with the public signatures of ExecuTorch's Module (executorch-android) that the app
 * uses. It runs no program: a "program" file holds "STANDIN <dim>", and forward returns a
 * deterministic (batch, dim) float tensor computed from the input, so search results depend on it.
 */
public class Module {
  public static final int LOAD_MODE_FILE = 0;
  private final int dim;
  private boolean destroyed;

  private Module(int dim) {
    this.dim = dim;
  }

  public static Module load(final String modelPath) {
    String text;
    try {
      text = new String(Files.readAllBytes(Paths.get(modelPath)), StandardCharsets.US_ASCII).trim();
    } catch (IOException e) {
      throw new RuntimeException("cannot load ExecuTorch program " + modelPath + ": " + e);
    }
    if (!text.startsWith("STANDIN ")) {
      throw new RuntimeException("not a program: " + modelPath);
    }
    return new Module(Integer.parseInt(text.substring(8).trim()));
  }

  public static Module load(final String modelPath, int loadMode) {
    return load(modelPath);
  }

  public EValue[] forward(EValue... inputs) {
    if (destroyed) {
      throw new IllegalStateException("module destroyed");
    }
    Tensor input = inputs[0].toTensor();
    long[] shape = input.shape();
    int batch = (int) shape[0];
    double[] values = input.valuesAsDoubles();
    int per = values.length / batch;
    float[] out = new float[batch * dim];
    for (int b = 0; b < batch; b++) {
      for (int i = 0; i < per; i++) {
        int j = i % dim;
        out[b * dim + j] += (float) (values[b * per + i] * (((i * 31 + j) % 7) - 3));
      }
    }
    return new EValue[] {EValue.from(Tensor.fromBlob(out, new long[] {batch, dim}))};
  }

  public void destroy() {
    destroyed = true;
  }
}
