package android.content;

import android.net.Uri;

/** Stand-in of android.content.ContentUris. */
public final class ContentUris {
  public static Uri withAppendedId(Uri contentUri, long id) {
    return Uri.parse(contentUri.toString() + "/" + id);
  }

  public static long parseId(Uri contentUri) {
    return Long.parseLong(contentUri.getLastPathSegment());
  }
}
