package android.graphics;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.InputStream;
import javax.imageio.ImageIO;

/** Stand-in of android.graphics.BitmapFactory: decodes with javax.imageio, honours inJustDecodeBounds/inSampleSize. */
public class BitmapFactory {
  public static class Options {
    public boolean inJustDecodeBounds;
    public int inSampleSize;
    public int outWidth;
    public int outHeight;
  }

  public static Bitmap decodeStream(InputStream is, Rect outPadding, Options opts) {
    BufferedImage image;
    try {
      image = ImageIO.read(is);
    } catch (IOException e) {
      return null;
    }
    if (image == null) {
      return null;
    }
    int sample = opts == null || opts.inSampleSize < 1 ? 1 : Integer.highestOneBit(opts.inSampleSize);
    int w = Math.max(1, image.getWidth() / sample);
    int h = Math.max(1, image.getHeight() / sample);
    if (opts != null) {
      opts.outWidth = w;
      opts.outHeight = h;
      if (opts.inJustDecodeBounds) {
        return null;
      }
    }
    return scaled(image, w, h);
  }

  /** The image at w x h (nearest sample): shared with the stand-in ContentResolver's loadThumbnail. */
  public static Bitmap scaled(BufferedImage image, int w, int h) {
    int[] argb = new int[w * h];
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        argb[y * w + x] = image.getRGB(x * image.getWidth() / w, y * image.getHeight() / h);
      }
    }
    return Bitmap.createBitmap(argb, w, h, Bitmap.Config.ARGB_8888);
  }
}
