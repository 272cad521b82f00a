"""open_clip's byte-level BPE tokenizer without torch, built from a bundle's tokenizer files.

A phone runs the exported programs with ExecuTorch or Core ML and has no torch, so it cannot use
``open_clip.tokenizer`` (which imports torch). This is the same algorithm (CLIP's
``SimpleTokenizer``: ftfy + html unescape + whitespace collapse + lowercase, the CLIP split
pattern, byte-to-unicode table, greedy lowest-rank merges, truncation keeping EOT) on numpy only;
``tests/engine/test_tokenizer.py`` checks it against open_clip id for id.
"""
from __future__ import annotations

import gzip
import html
import json
import logging
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.clip_split import clip_split
from formats.tokenizer_files import TOKENIZER_CONFIG, tokenizer_files

logger = logging.getLogger(__name__)

N_MERGES = 49152 - 256 - 2  # merges open_clip reads: lines 1 .. 48894 of the BPE file


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible map from the 256 byte values to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _pairs(word: tuple[str, ...]) -> set[tuple[str, str]]:
    return set(pairwise(word))


class BpeTokenizer:
    """list[str] -> (B, context_length) int64: <start_of_text> ids <end_of_text>, zero padded."""

    def __init__(self, bpe_path: str | Path, context_length: int, clean: str = "lower", cache_size: int = 10_000):
        if clean not in ("lower", "whitespace"):
            raise ValueError(f"tokenizer clean rule {clean!r} is not supported (expected 'lower' or 'whitespace')")
        self._ftfy: Any = None  # imported on the first text that needs it (0.18 s of launch otherwise)
        self.clean = clean
        self.context_length = int(context_length)
        with gzip.open(bpe_path) as f:
            merges = f.read().decode("utf-8").split("\n")[1 : N_MERGES + 1]
        merge_pairs = [tuple(m.split()) for m in merges]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merge_pairs]
        vocab += ["<start_of_text>", "<end_of_text>"]
        self.encoder = {t: i for i, t in enumerate(vocab)}
        self.bpe_ranks = {m: i for i, m in enumerate(merge_pairs)}
        self.sot_token_id = self.encoder["<start_of_text>"]
        self.eot_token_id = self.encoder["<end_of_text>"]
        self.vocab_size = len(self.encoder)
        self._byte_encoder = bytes_to_unicode()
        self._cache: dict[str, str] = {"<start_of_text>": "<start_of_text>", "<end_of_text>": "<end_of_text>"}
        self._cache_size = cache_size

    @classmethod
    def from_bundle(cls, root: str | Path) -> BpeTokenizer:
        """From a bundle's ``tokenizer.json`` (written by export.bundle) and the BPE file it names."""
        root = Path(root)
        path = root / TOKENIZER_CONFIG
        try:
            config: dict[str, Any] = json.loads(path.read_text())
            ctx = int(config["context_length"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"tokenizer config {path} cannot be read: {e}") from e
        bpe = tokenizer_files(root, config, str(path)).vocabulary
        tok = cls(bpe, ctx, config.get("clean", "lower"))
        for key in ("sot_token_id", "eot_token_id", "vocab_size"):
            if key in config and config[key] != getattr(tok, key):
                raise ValueError(f"{path}: {key} is {config[key]} but the BPE file gives {getattr(tok, key)}")
        return tok

    def _fix_text(self, text: str) -> str:
        """ftfy.fix_text, which leaves printable ASCII without '&' as it is (checked over 200k random
        strings): such a query (most typed ones) never imports ftfy."""
        if text.isascii() and text.isprintable() and "&" not in text:
            return text
        if self._ftfy is None:
            import ftfy

            self._ftfy = ftfy
        return self._ftfy.fix_text(text)

    def _clean(self, text: str) -> str:
        text = html.unescape(html.unescape(self._fix_text(text))).strip()
        text = " ".join(text.split())
        return text.lower() if self.clean == "lower" else text

    def _bpe(self, token: str) -> str:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = _pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            merged: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    merged.extend(word[i:])
                    break
                merged.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        out = " ".join(word)
        if len(self._cache) < self._cache_size:
            self._cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without start/end tokens or truncation."""
        ids: list[int] = []
        for token in clip_split(self._clean(text)):  # open_clip's regex split, without the regex package
            token = "".join(self._byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self._bpe(token).split(" "))
        return ids

    def __call__(self, texts: list[str] | str) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for i, text in enumerate(texts):
            ids = [self.sot_token_id, *self.encode(text), self.eot_token_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot_token_id
            out[i, : len(ids)] = ids
        return out
