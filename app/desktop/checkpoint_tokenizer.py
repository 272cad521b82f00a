"""The training tokenizer of a checkpoint (open_clip's, through ``compression``): run directories only."""
from __future__ import annotations

import logging
from typing import Any

from app.engine.tokenizer import QueryTokenizer
from formats.run_card import OPEN_CLIP_TOKENIZER

logger = logging.getLogger(__name__)


def checkpoint_tokenizer(info: dict[str, Any], where: str = "tokenizer") -> QueryTokenizer:
    """From ``student.json["tokenizer"]`` = {kind: "open_clip", model, context_length}. Raises ValueError."""
    if info.get("kind") != OPEN_CLIP_TOKENIZER or not info.get("model") or not info.get("context_length"):
        raise ValueError(f"{where}: expected {{kind: 'open_clip', model, context_length}}, got {info!r}")
    from compression.models.teacher import build_tokenizer  # model definitions only (open_clip configs)

    return QueryTokenizer(build_tokenizer(info["model"], int(info["context_length"])), int(info["context_length"]), info)
