package android.content;

/** Stand-in of android.content.Context: the two methods MediaStoreGallery calls. */
public class Context {
  private final ContentResolver resolver = new ContentResolver();

  public Context getApplicationContext() {
    return this;
  }

  public ContentResolver getContentResolver() {
    return resolver;
  }
}
