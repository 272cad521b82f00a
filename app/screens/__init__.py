"""The app's screens; each is a ``name.py`` + ``name.kv`` pair, imported (and its .kv loaded) on its first visit."""
