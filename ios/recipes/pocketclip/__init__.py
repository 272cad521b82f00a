"""kivy-ios recipe for the PocketClip app: its compiled dependencies, its PhotoKit helper, the Apple frameworks.

    toolchain build --add-custom-recipe ios/recipes/pocketclip pocketclip

Written against kivy-ios's recipe API (``kivy_ios.toolchain.Recipe``, as its own ``ios`` recipe uses it):
``url = "src"`` names a folder next to this file, which ``download``/``extract`` copy as the source (no
download); ``build_platform(plat)`` runs once per platform (iphoneos-arm64, iphonesimulator-*) in that
copy with ``plat.get_env()``'s ``CC``/``CFLAGS``/``AR`` (clang with the SDK's sysroot and arch);
``library`` is the static archive that kivy-ios lipos into an xcframework and links into the app
(its Xcode template links with ``-all_load`` and no dead-code stripping, so ``ctypes.CDLL(None)``
finds the helper's exported C functions: ``app/platform/photokit.py``). The app's Python code is
not built by a recipe: ``toolchain create`` copies the staged folder (``ios/stage.py``).
Not run on the development machine (kivy-ios needs macOS and Xcode), see ios/README.md.
"""
from os.path import join
from typing import ClassVar

import sh
from kivy_ios.toolchain import Recipe, shprint


class PocketClipRecipe(Recipe):
    version = "0.2.0"
    url = "src"  # ios/recipes/pocketclip/src: the PhotoKit helper (pocketclip_photos.h / .m)
    library = "libpocketclip_photos.a"
    # what the code on the phone imports (tests/app/test_packaging.py checks it against the code)
    depends: ClassVar[list[str]] = ["python3", "kivy", "numpy", "pillow", "pyobjus"]
    # pure-Python packages the query tokenizer needs (app/engine/bpe.py), installed with pip
    python_depends: ClassVar[list[str]] = ["ftfy", "wcwidth"]
    # Core ML runs the .mlpackage encoders (app/engine/runtimes/ios.py); Photos and UIKit serve the
    # helper (the library, its images); CoreGraphics turns an image into RGB bytes
    pbx_frameworks: ClassVar[list[str]] = ["CoreML", "Photos", "UIKit", "CoreGraphics"]

    def build_platform(self, plat):
        env = plat.get_env()
        cc = sh.Command(env["CC"])
        shprint(cc, *env["CFLAGS"].split(), "-fobjc-arc", "-fvisibility=hidden", "-c",
                join(self.build_dir, "pocketclip_photos.m"), "-o", join(self.build_dir, "pocketclip_photos.o"))
        shprint(sh.Command(env["AR"]), "rcs", join(self.build_dir, self.library),
                join(self.build_dir, "pocketclip_photos.o"))


recipe = PocketClipRecipe()
