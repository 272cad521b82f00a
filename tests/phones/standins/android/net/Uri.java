package android.net;

/** Stand-in of android.net.Uri (a string). */
public final class Uri {
  private final String text;

  private Uri(String text) {
    this.text = text;
  }

  public static Uri parse(String uriString) {
    return new Uri(uriString);
  }

  public String getLastPathSegment() {
    return text.substring(text.lastIndexOf('/') + 1);
  }

  @Override
  public String toString() {
    return text;
  }
}
