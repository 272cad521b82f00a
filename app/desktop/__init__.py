"""Desktop-only parts of the app: the PyTorch runtime for run directories, the teacher re-ranker, and
the model loader that knows both. They import torch and ``compression``; phones never ship them
(``buildozer.spec`` and the kivy-ios recipe leave ``app/desktop`` out) and ``app.engine`` never imports
them (the import contract in ``tests/engine/test_import_contract.py``)."""
