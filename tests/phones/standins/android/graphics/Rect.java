package android.graphics;

/** Stand-in of android.graphics.Rect. */
public final class Rect {
  public int left, top, right, bottom;
}
