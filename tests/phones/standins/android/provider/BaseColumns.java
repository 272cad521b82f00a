package android.provider;

/** Stand-in of android.provider.BaseColumns. */
public interface BaseColumns {
  String _ID = "_id";
}
