package android.database;

import java.io.Closeable;

/** Stand-in of android.database.Cursor: the methods the app calls. */
public interface Cursor extends Closeable {
  int getColumnIndexOrThrow(String columnName);

  boolean moveToNext();

  int getCount();

  long getLong(int columnIndex);

  int getInt(int columnIndex);

  String getString(int columnIndex);

  @Override
  void close();
}
