"""A tiny AssembledStudent (untrained Lite0, 2-layer 32-wide BERT with MiniLM's vocabulary) and its run folder."""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn
from transformers import BertConfig, BertModel, BertTokenizer

from compression.clipart_pipeline import save_student
from compression.conse import imagenet_class_names
from compression.models.assembled import ConseChannel, SharedEncoder, SharedEncoderConfig
from compression.models.assembled_student import AssembledStudent, AssembledStudentConfig, attach_conse
from compression.models.pretrained_towers import minilm_path


def tiny_assembled_student(seed: int = 0, conse: bool = True) -> AssembledStudent:
    """With the ConSE channel the pipeline gives the student it ships (``conse=False``: a card of before it)."""
    torch.manual_seed(seed)
    tower = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    text = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64))
    tokenizer = BertTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)
    shared = SharedEncoder(SharedEncoderConfig(image_dim=1280, text_dim=32, width=32, layers=1, heads=2, embed_dim=16))
    student = AssembledStudent(tower, text, tokenizer, shared, AssembledStudentConfig(text_layers=2)).eval()
    if conse:
        attach_conse(student, ConseChannel(0.7, 10), imagenet_class_names())
    return student


def write_tiny_assembled_run(run_dir: Path, seed: int = 0, conse: bool = True) -> AssembledStudent:
    """student.json + student.safetensors + vocab.txt as ``--config clipart`` writes them; returns the student."""
    student = tiny_assembled_student(seed, conse)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_student(run_dir, student, nn.Parameter(torch.tensor(2.5)), student.cfg)
    return student
