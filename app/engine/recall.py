"""Text-to-photo recall@K of an indexed gallery, through the engine exactly as the app searches.

Captions come from a Karpathy-format JSON (``images[].filepath/filename``, ``images[].sentences[].raw``,
optional ``images[].split``) or a TSV of ``path<TAB>caption`` lines; relative paths are taken from
the captions file's folder. A caption is a hit at K when its photo is among ``search_text``'s first K
results (the same call, store and kernel the app uses: a float16 index is searched as float16).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from formats.errors import UserError

if TYPE_CHECKING:
    from app.engine.engine import SearchEngine

KS = (1, 5, 10)


class CaptionError(UserError, ValueError):
    """A captions file that cannot be evaluated; the message names the file and the line or entry."""


@dataclass(frozen=True)
class Caption:
    text: str
    photo: str  # absolute path of the photo it describes, as the gallery scan sees it
    where: str  # "FILE:LINE" or "FILE: images[i].sentences[j]", for error messages


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CaptionError(f"{path}: cannot read the captions file: {e.strerror or e}") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CaptionError(f"{path}:{line}: not UTF-8 text (byte {e.start})") from e


def _photo(base: Path, rel: str) -> str:
    return os.path.abspath(os.path.join(base, os.path.expanduser(rel)))


def _karpathy(path: Path, text: str, split: str | None) -> list[Caption]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise CaptionError(f"{path}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from e
    images = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(images, list):
        raise CaptionError(f"{path}: a Karpathy captions file is an object with an 'images' list")
    out = []
    for i, entry in enumerate(images):
        where = f"{path}: images[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str) or not entry["filename"]:
            raise CaptionError(f"{where} has no 'filename' string")
        if split is not None and entry.get("split") != split:
            continue
        folder = entry.get("filepath", "")
        if not isinstance(folder, str):
            raise CaptionError(f"{where}: 'filepath' is not a string")
        sentences = entry.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise CaptionError(f"{where} ({entry['filename']}) has no 'sentences' list")
        photo = _photo(path.parent / folder, entry["filename"])
        for j, s in enumerate(sentences):
            raw = s.get("raw") if isinstance(s, dict) else None
            if not isinstance(raw, str) or not raw.strip():
                raise CaptionError(f"{where}.sentences[{j}] has no 'raw' caption text")
            out.append(Caption(raw.strip(), photo, f"{where}.sentences[{j}]"))
    return out


def _tsv(path: Path, text: str) -> list[Caption]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        rel, tab, caption = line.partition("\t")
        if not tab or not rel.strip() or not caption.strip():
            raise CaptionError(f"{path}:{n}: expected `path<TAB>caption`, got {line[:80]!r}")
        out.append(Caption(caption.strip(), _photo(path.parent, rel.strip()), f"{path}:{n}"))
    return out


def read_captions(path: str | Path, split: str | None = None) -> list[Caption]:
    """The captions of ``path`` (JSON if it parses as a JSON object, else TSV); every photo must exist."""
    path = Path(path)
    text = _read_text(path)
    is_json = path.suffix.lower() == ".json" or text.lstrip().startswith("{")
    if split is not None and not is_json:
        raise CaptionError(f"{path}: --split needs a Karpathy JSON captions file")
    captions = _karpathy(path, text, split) if is_json else _tsv(path, text)
    if not captions:
        raise CaptionError(f"{path}: no captions" + (f" in split {split!r}" if split is not None else ""))
    for c in captions:
        if not os.path.isfile(c.photo):
            raise CaptionError(f"{c.where}: photo {c.photo} does not exist")
    return captions


def recall_at(engine: SearchEngine, captions: list[Caption], ks: tuple[int, ...] = KS) -> dict:
    """Recall@K in percent over ``captions``; every photo must be indexed (else CaptionError naming it)."""
    real = {p: os.path.realpath(p) for p in {c.photo for c in captions}}
    for c in captions:
        if engine.store.embedding_of_path(c.photo) is None and engine.store.embedding_of_path(real[c.photo]) is None:
            raise CaptionError(f"{c.where}: photo {c.photo} is not in the index; run "
                               f"`python -m app.engine index --gallery DIR` on its folder first")
    seen: dict[str, str] = {}
    hits = {k: 0 for k in ks}
    for c in captions:
        results = engine.search_text(c.text, k=max(ks))
        found = [seen.setdefault(r.path, os.path.realpath(r.path)) for r in results]
        rank = found.index(real[c.photo]) if real[c.photo] in found else max(ks)
        for k in ks:
            hits[k] += rank < k
    return {"captions": len(captions), "images": len(real), "embedding_dtype": engine.store.embedding_dtype,
            **{f"R@{k}": 100.0 * hits[k] / len(captions) for k in ks}}
