"""The encoders the encoders section measures, and how much a run measures (quick or full)."""

from __future__ import annotations

from dataclasses import dataclass

TEACHER_MODEL = "ViT-B-32"
SEED = 0  # every encoder is built right after torch.manual_seed(SEED): workers rebuild identical weights
PAPER_SPEEDUP = {"image": 1.5, "text": 2.8}  # student/teacher speed claimed by the paper (MoTIS)
QUERY_LENGTHS = (5, 8, 16)  # typical query lengths in tokens, <sot> and <eot> included
TYPICAL_QUERY = 8  # "a dog running on the beach": <sot> + 6 words + <eot>
MATCH_ATOL = 1e-4  # max |diff| of L2-normalised embeddings under which two encodings are the same
RUNTIMES = ("eager", "executorch_fp32", "executorch_int8")
RUNTIME_LABELS = {
    "eager": "PyTorch eager", "executorch_fp32": "ExecuTorch fp32", "executorch_int8": "ExecuTorch int8"
}


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder to measure; ``build_encoder`` turns it into modules (in any process, same weights)."""

    key: str  # result key: "teacher_image", a timm backbone name, "teacher_text", "student_text_6"
    kind: str  # "image" or "text"
    role: str  # "teacher", "student" (the paper's) or "candidate" (another image student worth offering)
    label: str
    backbone: str | None = None  # timm name of an image student
    text_layers: int | None = None  # how many of the teacher's text blocks a text encoder keeps
    teacher_model: str = TEACHER_MODEL

    @property
    def optional(self) -> bool:
        """A candidate's failures are recorded in the result; the others' stop the run."""
        return self.role == "candidate"


TEACHER_IMAGE = EncoderSpec("teacher_image", "image", "teacher", "ViT-B/32 (teacher)")
STUDENT_IMAGE = EncoderSpec("vit_small_patch16_224", "image", "student", "ViT-S/16 (paper's student)",
                            backbone="vit_small_patch16_224")
CANDIDATE_IMAGES = (
    EncoderSpec("vit_small_patch32_224", "image", "candidate", "ViT-S/32", backbone="vit_small_patch32_224"),
    EncoderSpec("mobilenetv4_conv_small", "image", "candidate", "MobileNetV4-S",
                backbone="mobilenetv4_conv_small"),
    EncoderSpec("mobilenetv3_large_100", "image", "candidate", "MobileNetV3-L",
                backbone="mobilenetv3_large_100"),
    EncoderSpec("efficientvit_b0", "image", "candidate", "EfficientViT-B0", backbone="efficientvit_b0"),
)
TEACHER_TEXT = EncoderSpec("teacher_text", "text", "teacher", "12-layer text (teacher)", text_layers=12)
STUDENT_TEXTS = (
    EncoderSpec("student_text_6", "text", "student", "6-layer text (paper's student)", text_layers=6),
    EncoderSpec("student_text_4", "text", "student", "4-layer text (student)", text_layers=4),
)


@dataclass(frozen=True)
class Settings:
    """How much a run measures; ``settings(quick)`` gives the two presets."""

    batch: int  # the larger batch (batch 1 is always measured)
    rounds: int  # timed rounds, encoders of a group interleaved; the median of the rounds is reported
    budget_s: float  # seconds of calls per encoder per round (at least ``min_calls``)
    min_calls: int
    invariance_sequences: int  # random token sequences of the length-invariance proof
    calibration: int  # random samples int8 programs are calibrated on
    candidates_in_executorch: bool  # export the candidate image backbones too (else eager only)
    int8: bool  # export int8 programs
    executorch_batch: bool  # export image programs at ``batch`` too (else ExecuTorch at batch 1 only)
    text_layers_in_executorch: tuple[int, ...]  # student text towers exported (the teacher's always is)


def settings(quick: bool) -> Settings:
    if quick:  # lowering the big towers dominates (export_s in bench/results/encoders.json)
        return Settings(batch=8, rounds=3, budget_s=0.1, min_calls=2, invariance_sequences=32, calibration=8,
                        candidates_in_executorch=False, int8=False, executorch_batch=False,
                        text_layers_in_executorch=(6,))
    return Settings(batch=16, rounds=5, budget_s=0.5, min_calls=3, invariance_sequences=100, calibration=32,
                    candidates_in_executorch=True, int8=True, executorch_batch=True,
                    text_layers_in_executorch=(6, 4))
