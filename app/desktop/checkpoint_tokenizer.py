"""The training tokenizer of a checkpoint (open_clip's, through ``compression``): run directories only."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app.engine.tokenizer import QueryTokenizer

logger = logging.getLogger(__name__)


def checkpoint_tokenizer(info: dict[str, Any], where: str = "tokenizer", run_dir: Path | None = None) -> QueryTokenizer:
    """From ``student.json["tokenizer"]``: {kind: "open_clip", model, context_length}, or for a clip art run
    {kind: "wordpiece", vocab, lowercase, max_length} (the engine's WordPiece on the run's own vocab file,
    as its bundles use). Raises ValueError."""
    if info.get("kind") == "wordpiece":
        from app.engine.wordpiece import WordPieceTokenizer

        if run_dir is None or not info.get("vocab") or not info.get("max_length"):
            raise ValueError(f"{where}: expected {{kind: 'wordpiece', vocab, lowercase, max_length}}, got {info!r}")
        wordpiece = WordPieceTokenizer.from_files(Path(run_dir) / info["vocab"])
        wordpiece.lowercase = wordpiece.strip_accents = bool(info.get("lowercase", True))
        length = int(info["max_length"])
        return QueryTokenizer(lambda texts: wordpiece(texts, length), length, info)
    if info.get("kind") != "open_clip" or not info.get("model") or not info.get("context_length"):
        raise ValueError(f"{where}: expected {{kind: 'open_clip', model, context_length}}, got {info!r}")
    from compression.models.teacher import build_tokenizer  # model definitions only (open_clip configs)

    return QueryTokenizer(build_tokenizer(info["model"], int(info["context_length"])), int(info["context_length"]), info)
