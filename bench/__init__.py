"""Benchmarks of pocketclip on this machine, side by side in one run: `python -m bench` (see __main__.py).

Sections (one module each, with ``run``, ``to_markdown`` and ``plot``): encoders, search, indexing,
startup, quality. Results go to ``bench/results/``: one JSON per section, ``results.md`` and PNGs.
"""
