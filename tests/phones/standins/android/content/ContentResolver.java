package android.content;

import android.database.Cursor;
import android.database.MatrixCursor;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.net.Uri;
import android.os.Build;
import android.os.CancellationSignal;
import android.provider.MediaStore;
import android.util.Size;
import java.awt.image.BufferedImage;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import javax.imageio.ImageIO;

/**
 * Stand-in of android.content.ContentResolver serving MediaStore.Images from a folder.
 *
 * <p>System properties: pocketclip.standin.gallery (the folder; its files sorted by name get ids 1, 2,
 * ...), pocketclip.standin.selected (comma-separated ids: Android 14's "select photos", only those are
 * listed and readable), pocketclip.standin.denied=true (no permission: query throws SecurityException).
 * Read at each call, so a test can change access between scans.
 */
public class ContentResolver {
  private static final String BASE = MediaStore.Images.Media.EXTERNAL_CONTENT_URI.toString();

  public final Cursor query(Uri uri, String[] projection, String selection, String[] selectionArgs,
      String sortOrder) {
    if (Boolean.getBoolean("pocketclip.standin.denied")) {
      throw new SecurityException("Permission Denial: reading MediaStore requires READ_MEDIA_IMAGES");
    }
    String text = uri.toString();
    if (!text.startsWith(BASE)) {
      return null;
    }
    File[] files = visible();
    MatrixCursor cursor = new MatrixCursor(projection);
    for (int i = 0; i < files.length; i++) {
      long id = i + 1;
      if (files[i] == null || (!text.equals(BASE) && !text.equals(BASE + "/" + id))) {
        continue;
      }
      Object[] row = new Object[projection.length];
      for (int c = 0; c < projection.length; c++) {
        row[c] = column(projection[c], id, files[i]);
      }
      cursor.addRow(row);
    }
    return cursor;
  }

  public final InputStream openInputStream(Uri uri) throws FileNotFoundException {
    return new FileInputStream(file(uri));
  }

  public Bitmap loadThumbnail(Uri uri, Size size, CancellationSignal signal) throws IOException {
    if (Build.VERSION.SDK_INT < 29) {
      throw new NoSuchMethodError("ContentResolver.loadThumbnail is API 29+");
    }
    BufferedImage image = ImageIO.read(file(uri));
    if (image == null) {
      throw new IOException("Failed to create thumbnail: unsupported image");
    }
    double scale = Math.min(1.0, Math.min(size.getWidth() / (double) image.getWidth(),
        size.getHeight() / (double) image.getHeight()));  // fits inside the size, never enlarged
    int w = Math.max(1, (int) Math.round(image.getWidth() * scale));
    int h = Math.max(1, (int) Math.round(image.getHeight() * scale));
    return BitmapFactory.scaled(image, w, h);
  }

  private static File[] visible() {
    File[] files = new File(System.getProperty("pocketclip.standin.gallery", ".")).listFiles(File::isFile);
    if (files == null) {
      return new File[0];
    }
    Arrays.sort(files);
    String selected = System.getProperty("pocketclip.standin.selected", "");
    if (!selected.isEmpty()) {
      Set<String> ids = new HashSet<>(Arrays.asList(selected.split(",")));
      for (int i = 0; i < files.length; i++) {
        if (!ids.contains(String.valueOf(i + 1))) {
          files[i] = null;
        }
      }
    }
    return files;
  }

  private static File file(Uri uri) throws FileNotFoundException {
    String text = uri.toString();
    File[] files = visible();
    try {
      int id = Integer.parseInt(text.substring(BASE.length() + 1));
      if (text.startsWith(BASE + "/") && id >= 1 && id <= files.length && files[id - 1] != null
          && files[id - 1].isFile()) {
        return files[id - 1];
      }
    } catch (NumberFormatException | StringIndexOutOfBoundsException e) {
      // not an item of this provider
    }
    throw new FileNotFoundException("No item at " + text);
  }

  private static Object column(String name, long id, File f) {
    switch (name) {
      case MediaStore.Images.Media._ID:
        return id;
      case MediaStore.Images.Media.DATE_MODIFIED:
        return f.lastModified() / 1000;
      case MediaStore.Images.Media.SIZE:
        return f.length();
      case MediaStore.Images.Media.DISPLAY_NAME:
        return f.getName();
      case MediaStore.Images.Media.MIME_TYPE:
        return f.getName().endsWith(".png") ? "image/png" : "image/jpeg";
      case MediaStore.Images.Media.ORIENTATION:
        return 0;
      default:
        throw new IllegalArgumentException("no column " + name);
    }
  }
}
