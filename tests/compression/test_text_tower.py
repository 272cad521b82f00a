"""The one text forward (``compression.models.text_tower.text_tower_forward``) that the teacher, the student
and the export wrapper call: each equals open_clip's own ``CLIP.encode_text``, the computation all three
were written to mirror, and they equal each other, at full and at cut lengths."""
import pytest
import torch

from compression.models.student import create_student
from compression.models.teacher import build_tokenizer, create_teacher, encode_text_at_length
from compression.models.text_tower import causal_mask, text_tower_forward
from export.wrappers import TextEncoderForExport

TINY_IMAGE = {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 2}


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return create_teacher("synthclip-tiny").eval()


@pytest.fixture(scope="module")
def tokens():
    tok = build_tokenizer("synthclip-tiny", 32)
    return tok(["a red circle to the left of a blue box", "a green star", "tiny yellow heart above a large ring"])


def test_causal_mask_is_open_clips():
    full = torch.full((5, 5), float("-inf")).triu_(1)  # open_clip's CLIP.build_causal_mask
    torch.testing.assert_close(causal_mask(5, torch.zeros(1)), full, rtol=0, atol=0)
    assert causal_mask(3, torch.zeros(1, dtype=torch.float16)).dtype == torch.float16


def test_teacher_student_and_export_forwards_equal_open_clip(teacher, tokens):
    student = create_student(teacher, "vit_tiny_patch16_224", 6, image_backbone_kwargs=TINY_IMAGE).eval()
    length = int(tokens.argmax(-1).max()) + 1
    with torch.no_grad():
        reference = teacher.encode_text(tokens)
        for text in (tokens, tokens[:, :length]):
            torch.testing.assert_close(encode_text_at_length(teacher, text), reference, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(student.text(text), reference, atol=1e-6, rtol=1e-5)
            exported = TextEncoderForExport(student.text)(text)
            torch.testing.assert_close(exported, torch.nn.functional.normalize(reference, dim=-1), atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(exported, student.text(text, normalize=True), rtol=0, atol=0)


def test_encode_tokens_takes_a_linear_projection_and_none(teacher, tokens):
    t = teacher
    mask = t.attn_mask
    with torch.no_grad():
        x = text_tower_forward(tokens, t.token_embedding, t.positional_embedding, t.transformer, t.ln_final, None, mask)
        linear = torch.nn.Linear(*t.text_projection.shape, bias=False)
        linear.weight.copy_(t.text_projection.T)
        y = text_tower_forward(tokens, t.token_embedding, t.positional_embedding, t.transformer, t.ln_final, linear, mask)
    torch.testing.assert_close(y, x @ t.text_projection)
    torch.testing.assert_close(y, teacher.encode_text(tokens).detach())


def test_student_gradients_flow_through_the_shared_forward(teacher, tokens):
    student = create_student(teacher, "vit_tiny_patch16_224", 2, image_backbone_kwargs=TINY_IMAGE)
    student.text(tokens).sum().backward()
    assert student.text.token_embedding.weight.grad is not None
    assert float(student.text.resblocks[0].attn.in_proj_weight.grad.abs().sum()) > 0
