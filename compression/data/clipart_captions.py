"""Captions for the Open Clip Art Library from its SVG metadata, and the rules that drop what does
not describe the drawing. The rules (numbered as in the README's "Real pictures" section):

1. The title is the work's own ``dc:title`` (not the publisher's or the creator's, which are also
   ``dc:title`` elements). Boilerplate is cut from it: "Clipart by NAME - ", "Part of the ...
   Collection (date)", "Open Clip Art Library", ``HASH(0x...)``, URLs, "SVG", "theme", "icon set".
2. A title that 5 or more distinct drawings share is a series name ("gramastar", "Lemon SVG theme",
   "card", "Etiquette Icons"), not a description of one drawing: dropped.
3. Author names: the words of ``dc:creator`` and their truncations (file names cut "architetto_frances")
   are removed from the title and the file name.
4. Language: a title is kept if at least 75% of its words (3+ letters) are English dictionary words
   (Debian ``wamerican``; a compound of two such words counts: "lightbulb", "keyring"); otherwise (Italian "Cigno", French "Coccinelle") it is dropped and the
   drawing is named by its English keywords and category only. File-name words are kept one by one
   when they are dictionary words.
5. Keywords (``dc:subject``) and category folders are split on ``_``/``-``, kept when they are
   dictionary words and not plumbing ("hash", "icons", "theme", "mimeicon", hex ids, numbers).
6. The description is kept when it is short (<= 30 words), mostly English (rule 4) and not
   boilerplate ("converted from", URLs, ``HASH(``).
7. A drawing with no name left (no title by 1-4 and no dictionary word in its file name) carries no
   description: dropped. Icon-theme folders (``computer/icons/*-theme``) are dropped whole.
8. Identical captions (series such as the star patterns and playing cards): at most 2 drawings keep
   each caption (applied by the reader, which sees the whole corpus).
"""
from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from formats.errors import FormatError, UserError

logger = logging.getLogger(__name__)

NS = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "cc": "http://web.resource.org/cc/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
}
DICTIONARY = Path("/usr/share/dict/words")  # Debian wamerican
SERIES_MIN = 5  # rule 2
ENGLISH_MIN = 0.75  # rule 4
MAX_DESCRIPTION_WORDS = 30  # rule 6
MAX_TERMS = 6  # keywords + category words appended to a caption

_BOILERPLATE = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^clip\s*art\s+by\s+[^-]+-\s*",
        r"part of the .*collection(\s*\(.*\))?",
        r"open\s*clip\s*art(\s*library)?",
        r"hash\(0x[0-9a-f]+\)",
        r"https?://\S+",
        r"\bsvg\b",
        r"\b(icon\s*set|iconset|theme)\b",
    )
]
_JUNK_DESCRIPTION = re.compile(r"hash\(|converted from|https?://|www\.|@", re.IGNORECASE)
_PLUMBING = {"hash", "icon", "icons", "theme", "mimeicon", "magick", "clipart", "svg", "special", "misc",
             "various", "other", "stuff", "untitled", "image", "picture", "drawing"}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


class MissingDictionaryError(UserError, FileNotFoundError):
    """The English word list is not installed; names the file and the apt package."""


class MetadataError(FormatError):
    """An SVG whose metadata cannot be read; names the file."""


_STOPWORDS = {"and", "the", "for", "with", "from", "this", "that", "are", "was", "its", "his", "her", "not"}


@dataclass(frozen=True)
class ClipArtMeta:
    """What one SVG says about itself."""

    key: str  # path under the package root without extension, e.g. "animals/birds/cigno_architetto_frances_01"
    title: str
    description: str
    subjects: tuple[str, ...]
    creator: str


def read_metadata(svg: Path, key: str) -> ClipArtMeta:
    """The ``cc:Work`` fields of one SVG (empty strings when absent). Rejects DOCTYPEs (no entity
    expansion from a file we did not write)."""
    try:
        root = ET.fromstring(svg.read_bytes())  # expat >= 2.4 bounds entity amplification
    except (OSError, ET.ParseError) as e:
        raise MetadataError(f"{svg}: {e}") from e
    work = root.find(".//cc:Work", NS)
    if work is None:
        return ClipArtMeta(key, "", "", (), "")

    def text(path: str) -> str:
        return " ".join((work.findtext(path, default="", namespaces=NS) or "").split())

    subjects = tuple(" ".join((li.text or "").split()) for li in work.findall("dc:subject/rdf:Bag/rdf:li", NS))
    return ClipArtMeta(key, text("dc:title"), text("dc:description"), subjects, text("dc:creator/cc:Agent/dc:title"))


def load_dictionary(path: Path = DICTIONARY) -> frozenset[str]:
    """Lower-cased English words, one per line (possessives dropped)."""
    if not path.is_file():
        raise MissingDictionaryError(f"English word list {path} not found; apt-get install wamerican")
    words = path.read_text(encoding="utf-8", errors="replace").split()
    return frozenset(w.lower() for w in words if "'" not in w)


def words(text: str) -> list[str]:
    """Letters-only words, lower-cased; camelCase and snake_case split."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return [w.lower() for w in _WORD.findall(text)]


def _known(word: str, dictionary: frozenset[str]) -> bool:
    """A dictionary word, a plural of one, or a compound of two with 3+ letters each."""
    if word in dictionary or (word.endswith("s") and word[:-1] in dictionary):
        return True
    return any(word[:i] in dictionary and word[i:] in dictionary for i in range(3, len(word) - 2))


def english_share(ws: Iterable[str], dictionary: frozenset[str]) -> float:
    """Share of words with 3+ letters that are dictionary words (1.0 when there are none)."""
    long = [w for w in ws if len(w) >= 3]
    return sum(_known(w, dictionary) for w in long) / len(long) if long else 1.0


def _author_words(creator: str) -> set[str]:
    return {w for w in words(creator) if len(w) >= 3}


def _is_author(word: str, authors: set[str]) -> bool:
    """A creator's word or a truncation of one (file names cut names to fit: "frances", "desig")."""
    return any(a == word or (len(word) >= 3 and a.startswith(word)) for a in authors)


def clean_title(meta: ClipArtMeta, series_titles: frozenset[str], dictionary: frozenset[str]) -> str:
    """Rules 1-4: the title as a description of this drawing, or "" if it is not one."""
    title = meta.title
    if title.lower() in series_titles:
        return ""
    for pattern in _BOILERPLATE:
        title = pattern.sub(" ", title)
    authors = _author_words(meta.creator)
    ws = [w for w in words(title) if not _is_author(w, authors)]
    if not any(len(w) >= 3 for w in ws) or english_share(ws, dictionary) < ENGLISH_MIN:
        return ""
    return " ".join(ws)


def file_name_words(meta: ClipArtMeta, dictionary: frozenset[str]) -> list[str]:
    """Dictionary words of the file name, authors removed (rule 3-4)."""
    authors = _author_words(meta.creator)
    stem = meta.key.rsplit("/", 1)[-1]
    return [w for w in words(stem) if len(w) >= 3 and _known(w, dictionary) and not _is_author(w, authors)]


def _terms(meta: ClipArtMeta, dictionary: frozenset[str]) -> list[str]:
    """Rule 5: keywords, then category folders from the leaf up, as dictionary words, deduplicated."""
    folders = meta.key.split("/")[:-1][::-1]
    out: list[str] = []
    for raw in [*meta.subjects, *folders]:
        for w in words(raw):
            if len(w) >= 3 and w not in _PLUMBING and w not in _STOPWORDS and _known(w, dictionary) and w not in out:
                out.append(w)
    return out


def clean_description(meta: ClipArtMeta, title: str, dictionary: frozenset[str]) -> str:
    """Rule 6."""
    d = meta.description
    ws = words(d)
    if not ws or _JUNK_DESCRIPTION.search(d) or len(ws) > MAX_DESCRIPTION_WORDS:
        return ""
    if " ".join(ws) == title or english_share(ws, dictionary) < ENGLISH_MIN:
        return ""
    return d.strip().rstrip(".")


def is_icon_theme(key: str) -> bool:
    """Rule 7: ``computer/icons/<something>-theme/...`` (abstract UI glyphs named after actions)."""
    parts = key.split("/")
    return len(parts) > 2 and parts[0] == "computer" and parts[1] == "icons" and "theme" in parts[2]


def _singular(w: str) -> str:
    return w[:-1] if w.endswith("s") and len(w) > 3 else w


def build_caption(meta: ClipArtMeta, series_titles: frozenset[str], dictionary: frozenset[str]) -> tuple[str, str]:
    """(caption, "") or ("", reason it was dropped) for one drawing; rules 1-7."""
    if is_icon_theme(meta.key):
        return "", "icon theme"
    title = clean_title(meta, series_titles, dictionary)
    name = title or " ".join(file_name_words(meta, dictionary))
    if not name:
        return "", "no descriptive title or file name"
    description = clean_description(meta, name, dictionary)
    seen = {_singular(w) for w in words(name + " " + description)}
    terms = [t for t in _terms(meta, dictionary) if _singular(t) not in seen]
    terms = [t for i, t in enumerate(terms) if _singular(t) not in {_singular(u) for u in terms[:i]}]
    caption = name + (f". {description}" if description else "")
    if terms:
        caption += ", " + ", ".join(terms[:MAX_TERMS])
    return caption, ""


def series_titles(metas: Iterable[ClipArtMeta], min_count: int = SERIES_MIN) -> frozenset[str]:
    """Rule 2: lower-cased titles that ``min_count`` or more distinct drawings share."""
    counts: dict[str, int] = {}
    for m in metas:
        t = m.title.lower()
        if t:
            counts[t] = counts.get(t, 0) + 1
    return frozenset(t for t, n in counts.items() if n >= min_count)
