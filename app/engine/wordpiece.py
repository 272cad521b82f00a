"""A BERT WordPiece tokenizer in the standard library and numpy, for text towers such as MiniLM.

It reproduces the Hugging Face ``tokenizers`` pipeline that a ``tokenizer.json`` of type
BertNormalizer + BertPreTokenizer + WordPiece + [CLS]/[SEP] template describes, step by step:

1. special tokens ([CLS], [SEP], [PAD], [UNK], [MASK]) written in the text are matched verbatim first;
2. clean: drop U+0000, U+FFFD and characters of category Cc/Cf/Co/Cs (not tab, newline, carriage
   return; unassigned ones stay and become [UNK]), turn whitespace into spaces. Categories are the
   ones ``tokenizers`` uses (``wordpiece_unicode``: its tables predate Python's);
3. put spaces around CJK ideographs (BERT's ranges);
4. strip accents (NFD, drop Mn) when lower-casing, then lower-case character by character;
5. split on whitespace and around every punctuation character (ASCII punctuation or Unicode P*);
6. WordPiece: greedy longest match with "##" continuations; a word over 100 characters, or one with
   a piece missing from the vocabulary, becomes [UNK];
7. [CLS] ids [SEP], cut to ``max_length`` (the content first), padded with [PAD].

Id-for-id equality with ``tokenizers`` is tested on a fuzz corpus in tests/engine/test_wordpiece.py.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.engine.wordpiece_unicode import reference_category
from formats.errors import FormatError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_INPUT_CHARS_PER_WORD = 100
# Rust's char::is_whitespace (the Unicode White_Space property), which tokenizers uses.
_WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


class TokenizerFileError(FormatError):
    """A vocabulary or tokenizer file that cannot be used; names the file."""


def _is_cjk(c: str) -> bool:
    o = ord(c)
    return any(lo <= o <= hi for lo, hi in _CJK_RANGES)


def _is_punctuation(c: str) -> bool:
    return c in _ASCII_PUNCTUATION or reference_category(c).startswith("P")


def _is_whitespace(c: str) -> bool:
    return c in _WHITESPACE


def _is_control(c: str) -> bool:
    """Cc, Cf, Co, Cs; unassigned code points (Cn) are kept and end up as [UNK], as in tokenizers."""
    return c not in "\t\n\r" and reference_category(c) in ("Cc", "Cf", "Co", "Cs")


class WordPieceTokenizer:
    """texts -> (B, L) int64 ids, equal to the Hugging Face fast tokenizer of the same files."""

    def __init__(self, vocab: dict[str, int], lowercase: bool = True, strip_accents: bool | None = None):
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise TokenizerFileError(f"vocabulary lacks the special tokens {missing}")
        self.vocab = vocab
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.pad_id, self.unk_id = vocab["[PAD]"], vocab["[UNK]"]
        self.cls_id, self.sep_id = vocab["[CLS]"], vocab["[SEP]"]
        self._special = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))

    @classmethod
    def from_files(cls, vocab_txt: Path, tokenizer_config: Path | None = None) -> WordPieceTokenizer:
        """``vocab.txt`` (one token a line, id = line number) and optionally ``tokenizer_config.json``
        (``do_lower_case``, ``strip_accents``)."""
        try:
            lines = Path(vocab_txt).read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError) as e:
            raise TokenizerFileError(f"cannot read vocabulary {vocab_txt}: {e}") from e
        if lines and lines[-1] == "":
            lines.pop()
        vocab = {tok: i for i, tok in enumerate(lines)}
        lowercase, strip = True, None
        if tokenizer_config is not None:
            try:
                cfg = json.loads(Path(tokenizer_config).read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise TokenizerFileError(f"cannot read tokenizer config {tokenizer_config}: {e}") from e
            lowercase, strip = bool(cfg.get("do_lower_case", True)), cfg.get("strip_accents")
        return cls(vocab, lowercase, strip)

    def _normalize(self, text: str) -> str:
        out = []
        for c in text:
            if c == "\x00" or c == "\ufffd" or _is_control(c):
                continue
            if _is_whitespace(c):
                out.append(" ")
            elif _is_cjk(c):
                out.append(f" {c} ")
            else:
                out.append(c)
        text = "".join(out)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if reference_category(c) != "Mn")
        if self.lowercase:
            text = "".join(c.lower() for c in text)  # per character, as Rust's char::to_lowercase
        return text

    def _words(self, text: str) -> list[str]:
        words, current = [], []
        for c in text:
            if _is_whitespace(c) or _is_punctuation(c):
                if current:
                    words.append("".join(current))
                    current = []
                if not _is_whitespace(c):
                    words.append(c)
            else:
                current.append(c)
        if current:
            words.append("".join(current))
        return words

    def _word_ids(self, word: str) -> list[int]:
        if len(word) > MAX_INPUT_CHARS_PER_WORD:
            return [self.unk_id]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk_id]
            start = end
        return ids

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """[CLS] + WordPiece ids + [SEP], the content cut so the whole fits ``max_length``."""
        ids: list[int] = []
        pos = 0
        for m in self._special.finditer(text):
            for w in self._words(self._normalize(text[pos : m.start()])):
                ids.extend(self._word_ids(w))
            ids.append(self.vocab[m.group()])
            pos = m.end()
        for w in self._words(self._normalize(text[pos:])):
            ids.extend(self._word_ids(w))
        if max_length is not None:
            ids = ids[: max(0, max_length - 2)]
        return [self.cls_id, *ids, self.sep_id]

    def __call__(self, texts: Sequence[str], context_length: int) -> np.ndarray:
        """(B, context_length) int64, padded with [PAD] (0 for BERT vocabularies)."""
        out = np.full((len(texts), context_length), self.pad_id, dtype=np.int64)
        for i, t in enumerate(texts):
            ids = self.encode(t, context_length)
            out[i, : len(ids)] = ids
        return out
