package android.provider;

import android.net.Uri;

/** Stand-in of android.provider.MediaStore: the column names and the images' content URI, as in the SDK. */
public final class MediaStore {
  public interface MediaColumns extends BaseColumns {
    String DATA = "_data";
    String SIZE = "_size";
    String DISPLAY_NAME = "_display_name";
    String MIME_TYPE = "mime_type";
    String DATE_MODIFIED = "date_modified";
    String ORIENTATION = "orientation";
  }

  public static final class Images {
    public interface ImageColumns extends MediaColumns {}

    public static final class Media implements ImageColumns {
      public static final Uri EXTERNAL_CONTENT_URI = Uri.parse("content://media/external/images/media");
    }
  }
}
