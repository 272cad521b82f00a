"""The ConSE channel beside the joint space (compression.models.assembled.ConseChannel): its maths, the teacher
and the student with it, the student's run folder, and the weight chosen on validation."""
import json

import pytest
import timm
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertModel, BertTokenizer

from compression.conse import choose_channel_weight, conse_embeddings
from compression.models.assembled import (
    AssembledTeacher,
    ConseChannel,
    ConseHead,
    SharedEncoder,
    SharedEncoderConfig,
    conse_mix,
    fuse,
    image_grid_tokens,
    sentence_embedding,
)
from compression.models.assembled_student import load_assembled_student
from compression.models.pretrained_towers import SentenceEncoder, minilm_path
from formats.run_card import card_embed_dim
from tests.compression.assembled_fixture import write_tiny_assembled_run


def _gather_conse(logits, class_emb, top):
    """Norouzi et al.'s eq. 1 written as a gather over the top-T classes (the form conse_mix replaces)."""
    p, idx = logits.softmax(-1).topk(top, dim=-1)
    p = p / p.sum(-1, keepdim=True)
    return F.normalize(torch.einsum("nt,ntd->nd", p, class_emb[idx]), dim=-1)


def test_masked_matmul_equals_the_papers_top_t_mix():
    g = torch.Generator().manual_seed(0)
    logits, class_emb = torch.randn(6, 1000, generator=g) * 3, F.normalize(torch.randn(1000, 24, generator=g), dim=-1)
    for top in (1, 3, 10):
        torch.testing.assert_close(conse_mix(logits, class_emb, top), _gather_conse(logits, class_emb, top))
    assert conse_embeddings is not None and torch.equal(conse_embeddings(logits, class_emb, 10), conse_mix(logits, class_emb, 10))


def test_fused_dot_product_is_the_weighted_sum_of_both_similarities():
    g = torch.Generator().manual_seed(1)
    ja, jb = torch.randn(4, 16, generator=g), torch.randn(5, 16, generator=g)
    ca, cb = F.normalize(torch.randn(4, 8, generator=g), dim=-1), F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    a, b = fuse(ja, ca, 0.7), fuse(jb, cb, 0.7)
    assert a.shape == (4, 24)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(4))
    want = 0.7 * F.normalize(ja, dim=-1) @ F.normalize(jb, dim=-1).T + 0.3 * ca @ cb.T
    torch.testing.assert_close(a @ b.T, want)


@pytest.mark.parametrize("bad", [{"weight": 0.0}, {"weight": 1.5}, {"top": 0}])
def test_channel_refuses_values_out_of_range(bad):
    with pytest.raises(ValueError, match="ConSE channel"):
        ConseChannel(**bad)


def test_weight_chosen_on_validation_follows_the_part_that_retrieves():
    g = torch.Generator().manual_seed(2)
    n = 40
    good = F.normalize(torch.randn(n, 16, generator=g), dim=-1)
    noise = lambda: F.normalize(torch.randn(n, 16, generator=g), dim=-1)
    owner = torch.arange(n)
    w, by_weight = choose_channel_weight(noise(), noise(), good, good, owner)  # only ConSE knows the pairs
    assert w == 0.5 and by_weight["0.5"] > by_weight["1"]
    w, by_weight = choose_channel_weight(good, good, noise(), noise(), owner)  # only the joint space does
    assert w == 1.0 and set(by_weight) == {"0.5", "0.6", "0.7", "0.8", "0.9", "1"}


def _tiny_text():
    torch.manual_seed(0)
    text = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64)).eval()
    return SentenceEncoder(text, BertTokenizer.from_pretrained(str(minilm_path()), local_files_only=True))


def test_teacher_with_the_channel_joins_its_joint_space_and_conse_of_its_own_towers():
    text = _tiny_text()
    tower = timm.create_model("test_efficientnet").eval()
    shared = SharedEncoder(SharedEncoderConfig(image_dim=256, text_dim=32, width=32, layers=1, heads=2, embed_dim=16)).eval()
    class_emb = F.normalize(torch.randn(1000, 32), dim=-1)
    plain = AssembledTeacher(tower, text, shared).eval()
    fused = AssembledTeacher(tower, text, shared, ConseHead(ConseChannel(0.6, 5), class_emb)).eval()
    images = torch.rand(2, 3, 96, 96) * 2 - 1
    ids = plain.tokenize(["a red apple on a table", "boat"])
    with torch.no_grad():
        img, txt = fused.encode_image(images, normalize=True), fused.encode_text(ids, normalize=True)
        assert img.shape == (2, 48) and txt.shape == (2, 48)
        fmap = tower.forward_features(images)
        assert torch.equal(plain.encode_image(images, normalize=True),
                           shared.embed(shared.image_states(image_grid_tokens(fmap, 3))))
        torch.testing.assert_close(img, fuse(plain.encode_image(images, normalize=True),
                                             conse_embeddings(tower(images), class_emb, 5), 0.6))
        states, mask = plain.text_tokens(ids)
        torch.testing.assert_close(txt, fuse(plain.encode_text(ids, normalize=True), sentence_embedding(states, mask), 0.6))


def test_student_channel_uses_its_own_text_tower_and_survives_its_run_folder(tmp_path):
    saved = write_tiny_assembled_run(tmp_path)
    card = json.loads((tmp_path / "student.json").read_text())
    assert card["conse"] == {"weight": 0.7, "top": 10, "classes": 1000}
    assert card["embed_dim"] == card_embed_dim(card) == 16 + 32 == saved.embed_dim
    names = ["tabby, tabby cat", "daisy"]
    ids = saved.tokenizer(names, padding=True, return_tensors="pt")["input_ids"]
    with torch.no_grad():  # the class rows are the student's own sentence embeddings of the class names
        own = sentence_embedding(*saved.text_tokens(ids))
    torch.testing.assert_close(saved.conse.class_emb[[281, 985]], own)
    loaded, _ = load_assembled_student(tmp_path)
    assert loaded.conse.channel == ConseChannel(0.7, 10)
    images = torch.rand(2, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(images, normalize=True), saved.encode_image(images, normalize=True))
        torch.testing.assert_close(loaded.encode_text(ids, normalize=True), saved.encode_text(ids, normalize=True))
        assert loaded.encode_image(images).shape == (2, 48)


def test_a_card_from_before_the_channel_loads_as_the_joint_space_alone(tmp_path):
    write_tiny_assembled_run(tmp_path, conse=False)
    card = json.loads((tmp_path / "student.json").read_text())
    card.pop("embed_dim")  # as cards written before the channel were
    (tmp_path / "student.json").write_text(json.dumps(card))
    loaded, _ = load_assembled_student(tmp_path)
    assert loaded.conse is None and card_embed_dim(card) == 16
    with torch.no_grad():
        assert loaded.encode_image(torch.zeros(1, 3, 224, 224)).shape == (1, 16)


def test_class_names_are_refused_for_a_classifier_that_is_not_imagenet_1k():
    from compression.conse import classifier_class_names

    assert len(classifier_class_names(timm.create_model("test_efficientnet"))) == 1000
    with pytest.raises(ValueError, match="10 classes"):
        classifier_class_names(timm.create_model("test_efficientnet", num_classes=10))


def test_a_half_precision_copy_of_the_student_runs_its_channel():
    """export.parity's fp16 estimate runs a .half() copy; the mix once multiplied fp32 probabilities by fp16 rows."""
    from tests.compression.assembled_fixture import tiny_assembled_student

    student = tiny_assembled_student()
    ids = student.tokenizer(["a red apple"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want = student.encode_text(ids, normalize=True)
        half = student.half().encode_text(ids, normalize=True)
        logits = torch.randn(2, 1000).half()
        assert conse_mix(logits, student.conse.class_emb, 10).dtype == torch.float16
    torch.testing.assert_close(half.float(), want, atol=5e-3, rtol=0)
