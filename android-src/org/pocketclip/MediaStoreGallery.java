package org.pocketclip;

import android.content.ContentResolver;
import android.content.ContentUris;
import android.content.Context;
import android.database.Cursor;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.net.Uri;
import android.os.Build;
import android.provider.MediaStore;
import android.util.Size;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;

/**
 * The device's photos from MediaStore, called from Python (pyjnius) with strings and primitive arrays only.
 *
 * <p>Why a Java class: pyjnius looks classes up with JNI FindClass, which on a thread Python started (the
 * app's indexer thread and its decode workers) sees only the system class loader; and every Java object
 * a call returns (Cursor, Uri, Bitmap) may be wrapped by pyjnius after such a lookup (its class not yet seen). So Python builds this
 * object once on its main thread (with the activity as Context) and, from its worker threads, only
 * calls {@link #list()} (a String) and {@link #loadRgb(long, int)} (a byte[]). Both run the
 * ContentResolver on the calling thread: never the UI thread.
 *
 * <p>Only what the app may read is listed: on Android 14 with "select photos" MediaStore returns just
 * the photos the user selected.
 */
public final class MediaStoreGallery {
  public static final int OK = 0;
  public static final int MISSING = 1;
  public static final int UNDECODABLE = 2;

  private static final String[] COLUMNS = {
    MediaStore.Images.Media._ID,
    MediaStore.Images.Media.DATE_MODIFIED,
    MediaStore.Images.Media.SIZE,
    MediaStore.Images.Media.MIME_TYPE,
    MediaStore.Images.Media.DISPLAY_NAME,
  };

  private final ContentResolver resolver;

  public MediaStoreGallery(Context context) {
    resolver = context.getApplicationContext() != null
        ? context.getApplicationContext().getContentResolver()
        : context.getContentResolver();
  }

  /** The base of every photo's content URI (content://media/external/images/media). */
  public String root() {
    return MediaStore.Images.Media.EXTERNAL_CONTENT_URI.toString();
  }

  /** The device's API level (Build.VERSION.SDK_INT). */
  public int apiLevel() {
    return Build.VERSION.SDK_INT;
  }

  /**
   * One line per photo the app may read: id, date modified (seconds), size (bytes), MIME type and
   * display name, separated by tabs (tabs and line breaks in names become spaces). Null when the
   * query fails (no permission: a SecurityException; no provider).
   */
  public String list() {
    Cursor cursor;
    try {
      cursor = resolver.query(MediaStore.Images.Media.EXTERNAL_CONTENT_URI, COLUMNS, null, null,
          MediaStore.Images.Media._ID);
    } catch (SecurityException e) {
      return null;
    }
    if (cursor == null) {
      return null;
    }
    StringBuilder out = new StringBuilder();
    try {
      int id = cursor.getColumnIndexOrThrow(COLUMNS[0]);
      int modified = cursor.getColumnIndexOrThrow(COLUMNS[1]);
      int size = cursor.getColumnIndexOrThrow(COLUMNS[2]);
      int mime = cursor.getColumnIndexOrThrow(COLUMNS[3]);
      int name = cursor.getColumnIndexOrThrow(COLUMNS[4]);
      while (cursor.moveToNext()) {
        String mimeType = cursor.getString(mime);
        String displayName = cursor.getString(name);
        out.append(cursor.getLong(id)).append('\t')
            .append(cursor.getLong(modified)).append('\t')
            .append(cursor.getLong(size)).append('\t')
            .append(mimeType == null ? "" : clean(mimeType)).append('\t')
            .append(displayName == null ? "" : clean(displayName)).append('\n');
      }
    } finally {
      cursor.close();
    }
    return out.toString();
  }

  /**
   * The photo {@code id} at about {@code side} pixels on its shorter side: on API 29+ the system
   * thumbnail (ContentResolver.loadThumbnail, EXIF orientation applied), below it a decode with
   * inSampleSize. Returns [status][width: 4 bytes big-endian][height: 4][clockwise rotation / 90: 1][RGB
   * bytes, row by row]; for MISSING or UNDECODABLE, [status][message in UTF-8].
   */
  public byte[] loadRgb(long id, int side) {
    Uri uri = ContentUris.withAppendedId(MediaStore.Images.Media.EXTERNAL_CONTENT_URI, id);
    Bitmap bitmap;
    int quarterTurns = 0;
    try {
      if (Build.VERSION.SDK_INT >= 29) {
        // the thumbnail fits inside the size asked for: twice the side keeps the shorter side of
        // photos up to 2:1 at or above it
        bitmap = resolver.loadThumbnail(uri, new Size(2 * side, 2 * side), null);
      } else {
        bitmap = decodeSampled(uri, side);
        quarterTurns = orientation(uri) / 90;
      }
    } catch (FileNotFoundException e) {
      return status(MISSING, String.valueOf(e.getMessage()));
    } catch (IOException | RuntimeException e) {
      return status(UNDECODABLE, e.getClass().getSimpleName() + ": " + e.getMessage());
    }
    if (bitmap == null) {
      return status(UNDECODABLE, "no decoder for this image");
    }
    try {
      return rgb(bitmap, quarterTurns);
    } finally {
      bitmap.recycle();
    }
  }

  private Bitmap decodeSampled(Uri uri, int side) throws IOException {
    BitmapFactory.Options bounds = new BitmapFactory.Options();
    bounds.inJustDecodeBounds = true;
    try (InputStream in = resolver.openInputStream(uri)) {
      BitmapFactory.decodeStream(in, null, bounds);
    }
    if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
      return null;
    }
    BitmapFactory.Options options = new BitmapFactory.Options();
    options.inSampleSize = sampleSize(bounds.outWidth, bounds.outHeight, side);
    try (InputStream in = resolver.openInputStream(uri)) {
      return BitmapFactory.decodeStream(in, null, options);
    }
  }

  /** The largest power of two that keeps the shorter side at or above {@code side}. */
  public static int sampleSize(int width, int height, int side) {
    int shorter = Math.min(width, height);
    int sample = 1;
    while (shorter / (sample * 2) >= side) {
      sample *= 2;
    }
    return sample;
  }

  private int orientation(Uri uri) {
    String[] column = {MediaStore.Images.Media.ORIENTATION};
    Cursor cursor = resolver.query(uri, column, null, null, null);
    if (cursor == null) {
      return 0;
    }
    try {
      return cursor.moveToNext() ? ((cursor.getInt(0) % 360) + 360) % 360 : 0;
    } finally {
      cursor.close();
    }
  }

  private static byte[] rgb(Bitmap bitmap, int quarterTurns) {
    int w = bitmap.getWidth();
    int h = bitmap.getHeight();
    int[] argb = new int[w * h];
    bitmap.getPixels(argb, 0, w, 0, 0, w, h);
    byte[] out = new byte[10 + 3 * w * h];
    out[0] = OK;
    putInt(out, 1, w);
    putInt(out, 5, h);
    out[9] = (byte) quarterTurns;
    for (int i = 0, o = 10; i < argb.length; i++, o += 3) {
      int p = argb[i];
      out[o] = (byte) (p >> 16);
      out[o + 1] = (byte) (p >> 8);
      out[o + 2] = (byte) p;
    }
    return out;
  }

  private static void putInt(byte[] out, int at, int value) {
    out[at] = (byte) (value >>> 24);
    out[at + 1] = (byte) (value >>> 16);
    out[at + 2] = (byte) (value >>> 8);
    out[at + 3] = (byte) value;
  }

  private static byte[] status(int code, String message) {
    byte[] text = message.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    byte[] out = new byte[1 + text.length];
    out[0] = (byte) code;
    System.arraycopy(text, 0, out, 1, text.length);
    return out;
  }

  private static String clean(String s) {
    return s.replace('\t', ' ').replace('\n', ' ').replace('\r', ' ');
  }
}
