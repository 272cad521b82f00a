"""kivy-ios recipe for the PocketClip app: its compiled dependencies and the Apple frameworks it calls.

    toolchain build --add-custom-recipe ios/recipes/pocketclip pocketclip

Written against kivy-ios's documented recipe format (``kivy_ios.toolchain.Recipe``: ``depends``,
``pbx_frameworks``; a recipe whose ``url`` is empty has no source to download). The app's own
Python code is not built by a recipe: ``toolchain create`` copies the project folder into the Xcode
project. Not run on the development machine (kivy-ios needs macOS and Xcode), see ios/README.md.
"""
from typing import ClassVar

from kivy_ios.toolchain import Recipe


class PocketClipRecipe(Recipe):
    version = "0.1.0"
    url = ""  # nothing to download: this recipe only gathers dependencies and frameworks
    # what the code on the phone imports (tests/ui/test_packaging.py checks it against the code)
    depends: ClassVar[list[str]] = ["python3", "kivy", "numpy", "pillow", "pyobjus"]
    # pure-Python packages the query tokenizer needs (app/engine/bpe.py), installed with pip
    python_depends: ClassVar[list[str]] = ["ftfy", "wcwidth"]
    # Core ML runs the .mlpackage encoders (app/engine/runtimes/ios.py); Photos reports the library's
    # authorization (app/platform/ios.py)
    pbx_frameworks: ClassVar[list[str]] = ["CoreML", "Photos"]


recipe = PocketClipRecipe()
