"""The training tokenizer of a checkpoint (open_clip's, through ``compression``): run directories only."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app.engine.tokenizer import QueryTokenizer, wordpiece_tokenizer
from formats.run_card import OPEN_CLIP_TOKENIZER
from formats.tokenizer_files import WORDPIECE

logger = logging.getLogger(__name__)


def checkpoint_tokenizer(info: dict[str, Any], where: str = "tokenizer", run_dir: Path | None = None) -> QueryTokenizer:
    """From ``student.json["tokenizer"]`` (``formats.run_card``): {kind: "open_clip", model, context_length},
    or for a clip art run {kind: "wordpiece", vocab, lowercase, max_length} (the engine's WordPiece on the
    run's own vocab file, as its bundles use). Raises ValueError."""
    if info.get("kind") == WORDPIECE:
        if run_dir is None or not info.get("vocab") or not info.get("max_length"):
            raise ValueError(f"{where}: expected {{kind: 'wordpiece', vocab, lowercase, max_length}}, got {info!r}")
        return wordpiece_tokenizer(Path(run_dir) / info["vocab"], bool(info.get("lowercase", True)),
                                   int(info["max_length"]), info)
    if info.get("kind") != OPEN_CLIP_TOKENIZER or not info.get("model") or not info.get("context_length"):
        raise ValueError(f"{where}: expected {{kind: 'open_clip', model, context_length}}, got {info!r}")
    from compression.models.teacher import build_tokenizer  # model definitions only (open_clip configs)

    return QueryTokenizer(build_tokenizer(info["model"], int(info["context_length"])), int(info["context_length"]), info)
