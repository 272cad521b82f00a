package android.graphics;

/** Stand-in of android.graphics.Bitmap: ARGB_8888 pixels in an int array. */
public final class Bitmap {
  public enum Config { ARGB_8888 }

  private final int[] argb;
  private final int width;
  private final int height;
  private boolean recycled;

  private Bitmap(int[] argb, int width, int height) {
    this.argb = argb;
    this.width = width;
    this.height = height;
  }

  public static Bitmap createBitmap(int[] colors, int width, int height, Config config) {
    if (colors.length < width * height) {
      throw new ArrayIndexOutOfBoundsException("colors.length < width * height");
    }
    return new Bitmap(colors.clone(), width, height);
  }

  public int getWidth() {
    return width;
  }

  public int getHeight() {
    return height;
  }

  public void getPixels(int[] pixels, int offset, int stride, int x, int y, int w, int h) {
    if (recycled) {
      throw new IllegalStateException("Can't call getPixels() on a recycled bitmap");
    }
    for (int row = 0; row < h; row++) {
      System.arraycopy(argb, (y + row) * width + x, pixels, offset + row * stride, w);
    }
  }

  public void recycle() {
    recycled = true;
  }
}
