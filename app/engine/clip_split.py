"""CLIP's pre-tokenisation split without the ``regex`` package, which kivy-ios has no recipe for.

open_clip splits a cleaned text with ``regex.findall`` of
``<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+`` under
IGNORECASE. This scanner takes the same alternatives in the same order at each position, using the
Unicode categories of the standard library's ``unicodedata``; ``tests/engine/test_clip_split.py``
compares it with ``regex`` on generated text. The one difference: characters assigned after the
interpreter's Unicode version (3.11: Unicode 14) are not letters or digits here, as Python sees them.
"""
from __future__ import annotations

import logging
import unicodedata

logger = logging.getLogger(__name__)

_SPECIALS = ("<start_of_text>", "<end_of_text>")
_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")  # after the apostrophe, in the pattern's order
# regex's \s is Unicode White_Space; str.isspace() adds the four information separators
_NOT_REGEX_SPACE = frozenset("\x1c\x1d\x1e\x1f")


def _fold(ch: str) -> str:
    """Simple case folding as regex.IGNORECASE applies it to these ASCII patterns (long s folds to s)."""
    return "s" if ch == "\u017f" else ch.lower() if len(ch.lower()) == 1 else ch


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "L"


def _is_number(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "N"


def _is_space(ch: str) -> bool:
    return ch.isspace() and ch not in _NOT_REGEX_SPACE


def _matches_at(text: str, i: int, literal: str) -> bool:
    if i + len(literal) > len(text):
        return False
    return all(_fold(text[i + k]) == c for k, c in enumerate(literal))


def clip_split(text: str) -> list[str]:
    """The pieces ``regex.findall(CLIP_PATTERN, text, IGNORECASE)`` returns, in order."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        piece = next((text[i : i + len(s)] for s in _SPECIALS if _matches_at(text, i, s)), None)
        if piece is None and text[i] == "'":
            piece = next((text[i : i + 1 + len(c)] for c in _CONTRACTIONS if _matches_at(text, i + 1, c)), None)
        if piece is None:
            ch, j = text[i], i + 1
            if _is_letter(ch):
                while j < n and _is_letter(text[j]):
                    j += 1
            elif not _is_number(ch):
                if _is_space(ch):
                    i += 1  # no alternative matches here: findall moves on
                    continue
                while j < n and not (_is_space(text[j]) or _is_letter(text[j]) or _is_number(text[j])):
                    j += 1
            piece = text[i:j]
        out.append(piece)
        i += len(piece)
    return out
