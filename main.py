"""Entry point for Buildozer (Android) and kivy-ios, which run a top-level main.py: the same app as `python -m app`."""
from app.__main__ import main

raise SystemExit(main())
