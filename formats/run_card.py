"""The model card of a run directory: ``student.json``, what compression writes and export, bench and the
desktop app read to rebuild and describe a student without the training code's configuration.

Layout of a run directory (the files the readers rely on)::

    student.json                     this card: format_version, spec or kind, preprocess, tokenizer, ...
    student.safetensors              the student's weights
    bpe_simple_vocab_16e6.txt.gz     its tokenizer's vocabulary file (``formats.tokenizer_files``), or
    vocab.txt                        for a WordPiece student (the clip art runs)
    teacher.json, teacher.safetensors, metrics.json, report.md   (open_clip runs)

Two kinds of card: an open_clip student (no ``kind``; ``format_version`` and the ``spec`` that rebuilds
``compression.models.student.StudentCLIP``) and :data:`ASSEMBLED_STUDENT` (``compression.models.
assembled_student``). Both carry ``preprocess`` (``formats.preprocess``) and ``tokenizer``: for open_clip
``{kind: "open_clip", model, context_length, bpe_file}``, for WordPiece ``{kind: "wordpiece", vocab,
lowercase, max_length}``. Runs written before the tokenizer file was copied have no ``bpe_file``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formats.errors import FormatError
from formats.jsonfile import read_json_object
from formats.preprocess import Preprocess
from formats.tokenizer_files import TokenizerFiles, check_file, tokenizer_kind, vocabulary_name

RUN_CARD = "student.json"
STUDENT_WEIGHTS = "student.safetensors"
TEACHER_CARD = "teacher.json"
TEACHER_WEIGHTS = "teacher.safetensors"
FORMAT_VERSION = 1

CLIP_STUDENT = "clip-student"  # a card without "kind"
ASSEMBLED_STUDENT = "assembled-student"
KINDS = (CLIP_STUDENT, ASSEMBLED_STUDENT)
EMBED_DIM = "embed_dim"  # an assembled card's output size (joint space + ConSE channel); older cards: shared.embed_dim

# keys of the card
KIND, VERSION, SPEC, PREPROCESS, TOKENIZER = "kind", "format_version", "spec", "preprocess", "tokenizer"
# keys of the tokenizer section ("bpe_file"/"vocab" name the vocabulary file: formats.tokenizer_files)
OPEN_CLIP_TOKENIZER = "open_clip"  # its kind for an open_clip tokenizer (read as BPE)
TOKENIZER_MODEL, CONTEXT_LENGTH = "model", "context_length"


@dataclass(frozen=True)
class RunCard:
    """A run directory's ``student.json``, checked for its kind (and, for open_clip, version and spec)."""

    path: Path  # the student.json
    kind: str  # CLIP_STUDENT or ASSEMBLED_STUDENT
    data: dict[str, Any]  # the whole card, as written

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    def preprocess(self) -> Preprocess:
        """The student's image preprocessing; FormatError naming the file and key when unusable."""
        return Preprocess.from_dict(self.data.get(PREPROCESS), f"{self.path}: {PREPROCESS}")

    def tokenizer(self) -> dict[str, Any]:
        """The tokenizer section, checked to be an object of a known kind."""
        section = self.data.get(TOKENIZER)
        tokenizer_kind(section, f"{self.path}: {TOKENIZER}")
        return section

    def tokenizer_files(self) -> TokenizerFiles | None:
        """The tokenizer's vocabulary file in the run directory, checked; None for an open_clip run written
        before run directories carried it (its tokenizer comes from open_clip by ``model`` name)."""
        section, where = self.tokenizer(), f"{self.path}: {TOKENIZER}"
        kind = tokenizer_kind(section, where)
        if section.get("kind") == OPEN_CLIP_TOKENIZER and "bpe_file" not in section:
            return None
        path = self.run_dir / vocabulary_name(section, where)
        check_file(kind, path, str(self.path))
        return TokenizerFiles(kind, path)


def read_run_card(run_dir: str | Path, error: type[Exception] = FormatError) -> RunCard:
    """``run_dir/student.json``, checked: a JSON object of a known kind; an open_clip card has this
    format_version and a ``spec`` object. Raises ``error`` (a FormatError unless told) naming the file and key."""
    path = Path(run_dir) / RUN_CARD
    data = read_json_object(path, "student config", error)
    kind = data.get(KIND, CLIP_STUDENT)
    if kind not in KINDS:
        raise error(f"{path}: kind {kind!r}, expected one of {', '.join(KINDS)} (or none)")
    if kind == CLIP_STUDENT and (data.get(VERSION) != FORMAT_VERSION or not isinstance(data.get(SPEC), dict)):
        raise error(f"{path}: format_version {data.get(VERSION)!r} or 'spec' missing; expected format {FORMAT_VERSION}")
    return RunCard(path, kind, data)


def card_embed_dim(data: dict[str, Any]) -> int:
    """The embedding size a run's student outputs, from its card: an open_clip card's ``spec.embed_dim``,
    an assembled card's ``embed_dim`` (``shared.embed_dim`` on cards written before the ConSE channel)."""
    if data.get(KIND, CLIP_STUDENT) == CLIP_STUDENT:
        return int(data[SPEC]["embed_dim"])
    return int(data[EMBED_DIM] if EMBED_DIM in data else data["shared"]["embed_dim"])


def is_assembled_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir``'s student.json is the card of an assembled student (``--config clipart``); False for
    an open_clip card and for an unusable one (the loader it is then handed names what is wrong)."""
    try:
        return read_run_card(run_dir).kind == ASSEMBLED_STUDENT
    except FormatError:
        return False
