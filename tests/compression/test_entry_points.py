"""The compression entry points through formats.cli: bugs keep tracebacks, user errors are one line, Ctrl-C 130."""
from __future__ import annotations

import numpy as np
import pytest

from compression import assembled_teacher, evaluate_run, pipeline
from compression.data.readers import DataFormatError
from compression.run import main as run_main


def test_a_shape_bug_in_the_pipeline_keeps_its_traceback(tmp_path, monkeypatch):
    """compression.run used to catch every ValueError and print a numpy shape bug as a user error."""
    def buggy(*args, **kwargs):
        return np.zeros(3) + np.zeros(4)

    monkeypatch.setattr(pipeline, "run_pipeline", buggy)
    with pytest.raises(ValueError, match="could not be broadcast"):
        run_main(["--config", "synthetic", "--runs-dir", str(tmp_path)])


def test_a_user_error_of_the_assembled_teacher_is_one_line(tmp_path, monkeypatch, capsys):
    """Only four error types were caught there; a malformed data file ended in a traceback."""
    def broken(args):
        raise DataFormatError(f"{tmp_path / 'captions.json'}: images[0] has no 'sentences'")

    monkeypatch.setattr(assembled_teacher, "run", broken)
    assert assembled_teacher.main(["--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("compression.assembled_teacher: error: ") and "sentences" in err


def test_ctrl_c_in_an_evaluation_exits_130(tmp_path, monkeypatch, capsys):
    """compression.evaluate_run had no Ctrl-C handling: the interrupt ended in a traceback."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_run, "evaluate_run", interrupted)
    assert evaluate_run.main(["--run-dir", str(tmp_path), "--paired", str(tmp_path / "d.json"), "--device", "cpu"]) == 130
    assert "interrupted" in capsys.readouterr().err
