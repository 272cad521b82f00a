package org.kivy.android;

/** Stand-in of python-for-android's activity (an Activity, hence a Context): its static mActivity. */
public class PythonActivity extends android.content.Context {
  public static PythonActivity mActivity = new PythonActivity();
}
