"""A tokenizer as files, by kind: which files it has, what names them, and a check that they are there.

Two kinds today, room for more (a new kind adds its names to :data:`FILE_KEY` and the tables below it,
and its check to :func:`check_file`):

* :data:`BPE` -- open_clip's byte-level BPE (CLIP's): the merges file ``bpe_simple_vocab_16e6.txt.gz``
  (gzip; the vocabulary is derived from the merges);
* :data:`WORDPIECE` -- BERT WordPiece: ``vocab.txt``, one token a line, id = line number.

A bundle describes its tokenizer in ``tokenizer.json`` (kind, context length, the vocabulary file's name
under :data:`FILE_KEY`); a run directory in ``student.json["tokenizer"]`` (``formats.run_card``), whose
open_clip runs say kind ``"open_clip"`` and whose WordPiece runs name the file under ``"vocab"``. Both
carry the file itself next to the description. compression writes run directories, export copies the
files into bundles, and ``app.engine.tokenizer`` builds the query tokenizer from them by kind.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from formats.errors import FormatError

TOKENIZER_CONFIG = "tokenizer.json"  # a bundle's description of its tokenizer (export writes it)

BPE = "bpe"
WORDPIECE = "wordpiece"
KINDS = (BPE, WORDPIECE)

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"  # open_clip.tokenizer.default_bpe()'s name
VOCAB_FILE = "vocab.txt"

# The key that names the vocabulary file, by kind (tokenizer.json; a run card's WordPiece section says "vocab")
FILE_KEY = {BPE: "bpe_file", WORDPIECE: "vocab_file"}
_RUN_CARD_FILE_KEY = {BPE: "bpe_file", WORDPIECE: "vocab"}
_WHAT = {BPE: "BPE", WORDPIECE: "vocabulary"}

# Names a writer has used for each kind: "open_clip.SimpleTokenizer" in bundles, "open_clip" in run cards.
_ALIASES = {BPE: BPE, "open_clip": BPE, "open_clip.SimpleTokenizer": BPE, WORDPIECE: WORDPIECE}

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class TokenizerFiles:
    """A tokenizer's kind and its vocabulary file (checked to exist and look like its kind)."""

    kind: str  # BPE or WORDPIECE
    vocabulary: Path


def tokenizer_kind(section: Any, where: str = TOKENIZER_CONFIG) -> str:
    """BPE or WORDPIECE for a tokenizer description (``tokenizer.json`` or ``student.json["tokenizer"]``).

    A description without a kind is BPE (bundles written before WordPiece); an unknown kind raises
    FormatError naming ``where``.
    """
    if not isinstance(section, dict):
        raise FormatError(f"{where}: the tokenizer description is a {type(section).__name__}, not an object")
    kind = section.get("kind", BPE)
    if kind not in _ALIASES:
        raise FormatError(f"{where}: unknown tokenizer kind {kind!r} (expected one of {', '.join(KINDS)})")
    return _ALIASES[kind]


def is_plain_name(name: Any) -> bool:
    """A relative POSIX path that stays inside its directory: no '..', no empty or odd parts."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        return False
    parts = PurePosixPath(name).parts
    return not name.startswith("/") and all(p not in ("..", ".", "") for p in parts) and ":" not in parts[0]


def vocabulary_name(section: Any, where: str = TOKENIZER_CONFIG) -> str:
    """The vocabulary file a tokenizer description names (``bpe_file``; ``vocab_file`` or a run card's
    ``vocab``), checked to stay inside its directory. Raises FormatError naming ``where`` and the key."""
    kind = tokenizer_kind(section, where)
    keys = dict.fromkeys((FILE_KEY[kind], _RUN_CARD_FILE_KEY[kind]))
    name = next((section[k] for k in keys if k in section), None)
    if not is_plain_name(name):
        raise FormatError(f"{where}: {' or '.join(keys)} names {_WHAT[kind]} file {name!r}, not a file inside the "
                          f"directory")
    return name


def check_file(kind: str, path: Path, where: str = TOKENIZER_CONFIG) -> None:
    """Raise FormatError naming ``path`` (and ``where`` named it) unless it is a file of ``kind``:
    gzip for BPE, UTF-8 text for WordPiece (only the first bytes are read)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"tokenizer {_WHAT[kind]} file {path} (named in {where}) not found")
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise FormatError(f"cannot read tokenizer {_WHAT[kind]} file {path}: {e}") from e
    if kind == BPE and not head.startswith(_GZIP_MAGIC):
        raise FormatError(f"tokenizer BPE file {path} is not gzip (open_clip's merges are gzipped)")
    if kind == WORDPIECE:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start < len(head) - 3:  # not just a character cut at the 4096-byte boundary
                raise FormatError(f"tokenizer vocabulary {path} is not UTF-8 text: {e}") from e
        if not head.strip():
            raise FormatError(f"tokenizer vocabulary {path} is empty")


def tokenizer_files(root: Path, section: Any, where: str = TOKENIZER_CONFIG) -> TokenizerFiles:
    """The kind and checked vocabulary file of the tokenizer ``section`` describes, in directory ``root``."""
    kind = tokenizer_kind(section, where)
    path = Path(root) / vocabulary_name(section, where)
    check_file(kind, path, where)
    return TokenizerFiles(kind, path)
