package android.os;

/** Stand-in of android.os.Build: the API level comes from the system property pocketclip.standin.sdk (default 34). */
public class Build {
  public static class VERSION {
    public static final int SDK_INT = Integer.getInteger("pocketclip.standin.sdk", 34);
  }

  public static class VERSION_CODES {
    public static final int Q = 29;
  }
}
