"""The export modules compute what the student computes, eagerly and through torch.export."""

import torch

from compression.checkpoint import load_student
from compression.models.teacher import build_tokenizer
from export.wrappers import export_wrappers, image_example, text_dynamic_shapes, text_example

CAPTIONS = ["a red circle", "two blue squares next to a small green triangle on a beige background", "x"]


def _load(tiny_paths):
    student, meta = load_student(tiny_paths[0])
    tokens = build_tokenizer(meta["tokenizer"]["model"], meta["tokenizer"]["context_length"])(CAPTIONS)
    return student, tokens


def test_text_wrapper_matches_student_at_any_length(tiny_paths):
    student, tokens = _load(tiny_paths)
    _, text = export_wrappers(student)
    with torch.no_grad():
        full = student.text(tokens, normalize=True)
        torch.testing.assert_close(text(tokens), full)
        for i in range(len(CAPTIONS)):
            length = int(tokens[i].argmax()) + 1
            torch.testing.assert_close(text(tokens[i : i + 1, :length]), full[i : i + 1])


def test_torch_export_matches_eager(tiny_paths):
    student, tokens = _load(tiny_paths)
    image, text = export_wrappers(student)
    ctx = tokens.shape[1]
    ep_text = torch.export.export(
        text, text_example(ctx, student.text.arch["vocab_size"] - 1), dynamic_shapes=text_dynamic_shapes(ctx)
    )
    with torch.no_grad():
        for i in range(len(CAPTIONS)):
            for length in (int(tokens[i].argmax()) + 1, ctx):
                x = tokens[i : i + 1, :length]
                torch.testing.assert_close(ep_text.module()(x), text(x))
        size = image_example(32)[0].shape[-1]
        ep_image = torch.export.export(image, image_example(size))
        x = torch.randn(1, 3, size, size)
        out = ep_image.module()(x)
        torch.testing.assert_close(out, image(x))
        torch.testing.assert_close(out.norm(dim=-1), torch.ones(1))
