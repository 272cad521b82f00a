package android.os;

/** Stand-in of android.os.CancellationSignal. */
public final class CancellationSignal {
  public void cancel() {}
}
