package android.database;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Stand-in of android.database.MatrixCursor: rows of objects under named columns. */
public class MatrixCursor implements Cursor {
  private final List<String> columns;
  private final List<Object[]> rows = new ArrayList<>();
  private int position = -1;
  private boolean closed;

  public MatrixCursor(String[] columnNames) {
    columns = Arrays.asList(columnNames);
  }

  public void addRow(Object[] columnValues) {
    rows.add(columnValues);
  }

  public int getColumnIndexOrThrow(String columnName) {
    int i = columns.indexOf(columnName);
    if (i < 0) {
      throw new IllegalArgumentException("column '" + columnName + "' does not exist");
    }
    return i;
  }

  public boolean moveToNext() {
    check();
    if (position + 1 >= rows.size()) {
      position = rows.size();
      return false;
    }
    position++;
    return true;
  }

  public int getCount() {
    return rows.size();
  }

  public long getLong(int columnIndex) {
    return ((Number) value(columnIndex)).longValue();
  }

  public int getInt(int columnIndex) {
    return ((Number) value(columnIndex)).intValue();
  }

  public String getString(int columnIndex) {
    Object v = value(columnIndex);
    return v == null ? null : v.toString();
  }

  public void close() {
    closed = true;
  }

  private Object value(int columnIndex) {
    check();
    return rows.get(position)[columnIndex];
  }

  private void check() {
    if (closed) {
      throw new IllegalStateException("cursor closed");
    }
  }
}
