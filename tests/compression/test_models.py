"""Teacher/student construction: layer selection, weight copying, short-sequence equivalence."""
import pytest
import torch

from compression.models.student import StudentCLIP, create_student, select_text_layers
from compression.models.teacher import build_tokenizer, create_teacher

TINY_IMAGE = {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 2}


@pytest.fixture(scope="module")
def teacher():
    return create_teacher("synthclip-tiny").eval()


@pytest.fixture(scope="module")
def tokens():
    tok = build_tokenizer("synthclip-tiny", 32)
    return tok(["a red circle to the left of a blue box", "a green star", "tiny yellow heart above a large ring"])


@pytest.mark.parametrize(
    "n_teacher, n_student, expected",
    [(12, 6, [0, 2, 4, 7, 9, 11]), (12, 4, [0, 4, 7, 11]), (6, 4, [0, 2, 3, 5]), (6, 6, [0, 1, 2, 3, 4, 5]), (12, 1, [11])],
)
def test_select_text_layers(n_teacher, n_student, expected):
    assert select_text_layers(n_teacher, n_student) == expected


@pytest.mark.parametrize("n_student", [0, 7])
def test_select_text_layers_rejects_impossible(n_student):
    with pytest.raises(ValueError, match="cannot keep"):
        select_text_layers(6, n_student)


def test_student_with_all_layers_equals_teacher(teacher, tokens):
    student = create_student(teacher, "vit_tiny_patch16_224", 6, image_backbone_kwargs=TINY_IMAGE).eval()
    with torch.no_grad():
        torch.testing.assert_close(student.encode_text(tokens), teacher.encode_text(tokens))


def test_student_copies_the_selected_layers(teacher):
    student = create_student(teacher, "vit_tiny_patch16_224", 4, image_backbone_kwargs=TINY_IMAGE)
    assert student.text.arch["layer_ids"] == [0, 2, 3, 5]
    for block, i in zip(student.text.resblocks, [0, 2, 3, 5]):
        src = teacher.transformer.resblocks[i]
        torch.testing.assert_close(block.mlp.c_fc.weight, src.mlp.c_fc.weight)
        torch.testing.assert_close(block.attn.in_proj_weight, src.attn.in_proj_weight)
    torch.testing.assert_close(student.text.text_projection, teacher.text_projection)
    # a copy, not a view: training the student never touches the teacher
    student.text.resblocks[0].mlp.c_fc.weight.data.add_(1.0)
    assert not torch.equal(student.text.resblocks[0].mlp.c_fc.weight, teacher.transformer.resblocks[0].mlp.c_fc.weight)


def test_explicit_layer_ids_are_checked(teacher):
    with pytest.raises(ValueError, match="distinct and in"):
        create_student(teacher, "vit_tiny_patch16_224", 2, image_backbone_kwargs=TINY_IMAGE, text_layer_ids=[0, 9])
    with pytest.raises(ValueError, match="text_layers is 3"):
        create_student(teacher, "vit_tiny_patch16_224", 3, image_backbone_kwargs=TINY_IMAGE, text_layer_ids=[0, 5])


def test_text_at_actual_length_equals_full_context(teacher, tokens):
    student = create_student(teacher, "vit_tiny_patch16_224", 4, image_backbone_kwargs=TINY_IMAGE).eval()
    length = int(tokens.argmax(-1).max()) + 1
    assert length < tokens.shape[1]
    with torch.no_grad():
        torch.testing.assert_close(student.encode_text(tokens[:, :length]), student.encode_text(tokens), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="exceeds context length"):
        student.encode_text(torch.zeros(1, 33, dtype=torch.long))


@pytest.mark.parametrize(
    "backbone, kwargs",
    [("vit_tiny_patch16_224", TINY_IMAGE), ("resnet18", {}), ("mobilenetv3_small_050", {})],
)
def test_any_timm_backbone(teacher, backbone, kwargs):
    student = create_student(teacher, backbone, 2, image_backbone_kwargs=kwargs).eval()
    with torch.no_grad():
        out = student.encode_image(torch.randn(2, 3, 32, 32), normalize=True)
    assert out.shape == (2, 128)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))


def test_unknown_backbone_and_teacher_named_in_error(teacher):
    with pytest.raises(ValueError, match="unknown image backbone 'vit_nonexistent'"):
        create_student(teacher, "vit_nonexistent", 2)
    with pytest.raises(ValueError, match="unknown teacher model 'NotAModel'"):
        create_teacher("NotAModel")


def test_student_rebuilds_from_its_spec(teacher, tokens):
    student = create_student(teacher, "vit_tiny_patch16_224", 4, image_backbone_kwargs=TINY_IMAGE).eval()
    clone = StudentCLIP(student.spec).eval()
    clone.load_state_dict(student.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clone.encode_image(x), student.encode_image(x))
        torch.testing.assert_close(clone.encode_text(tokens), student.encode_text(tokens))


def test_torch_export_matches_eager(teacher, tokens):
    """As timm tests every model: the exported graph computes what eager does."""
    student = create_student(teacher, "vit_tiny_patch16_224", 4, image_backbone_kwargs=TINY_IMAGE).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ep_img = torch.export.export(student.visual, (x,))
        torch.testing.assert_close(ep_img.module()(x), student.visual(x))
        ep_txt = torch.export.export(student.text, (tokens,))
        torch.testing.assert_close(ep_txt.module()(tokens), student.text(tokens))


def test_teacher_text_at_actual_length_equals_open_clip(teacher, tokens):
    from compression.models.teacher import encode_text_at_length

    length = int(tokens.argmax(-1).max()) + 1
    with torch.no_grad():
        full = teacher.encode_text(tokens)
        torch.testing.assert_close(encode_text_at_length(teacher, tokens[:, :length]), full, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(encode_text_at_length(teacher, tokens), full)
