"""Reusable widgets of the app; each is a ``name.py`` + ``name.kv`` pair (the .kv is loaded with the module)."""
