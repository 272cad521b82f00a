"""The pretrained towers load from the wheels offline and compute what their reference implementations do."""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torchvision.transforms as T
from PIL import Image

from compression.models.pretrained_towers import (
    LITE_MEAN,
    LITE_STD,
    create_efficientnet_lite,
    create_minilm,
    efficientnet_lite_weights_path,
    input_size,
    map_reference_keys,
    minilm_path,
)

SKIMAGE_DATA = Path(pytest.importorskip("skimage").__file__).parent / "data"
CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def _reference(name: str) -> torch.nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name(name.replace("_", "-"))
    ref.load_state_dict(torch.load(efficientnet_lite_weights_path(name), map_location="cpu", weights_only=True))
    return ref.eval()


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_timm_efficientnet_lite_equals_reference_logits(name):
    s = input_size(name)
    x = torch.randn(2, 3, s, s)
    with torch.no_grad():
        torch.testing.assert_close(create_efficientnet_lite(name)(x), _reference(name)(x), rtol=1e-4, atol=1e-4)


def test_symmetric_padding_variant_does_not_match():
    """Why the tower is timm's tf_ variant: the same weights in efficientnet_lite0 give other logits."""
    ref = _reference("efficientnet_lite0")
    other = timm.create_model("efficientnet_lite0").eval()
    other.load_state_dict(map_reference_keys(ref.state_dict(), other))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (other(x) - ref(x)).abs().max() > 0.1


def test_key_map_names_what_does_not_fit():
    ref = torch.load(efficientnet_lite_weights_path("efficientnet_lite0"), map_location="cpu", weights_only=True)
    with pytest.raises(ValueError, match="key map mismatch: missing"):  # lite2 has more blocks than lite0
        map_reference_keys(ref, timm.create_model("tf_efficientnet_lite2"))
    ref["_blocks.3._project_conv.weight"] = ref["_blocks.3._project_conv.weight"][:-1]
    with pytest.raises(ValueError, match=r"shape mismatch at blocks\.2\.0\.conv_pwl\.weight"):
        map_reference_keys(ref, timm.create_model("tf_efficientnet_lite0"))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_imagenet_classes_on_real_photos(name):
    s = input_size(name)
    tf = T.Compose([T.Resize(s, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(s), T.ToTensor(),
                    T.Normalize(LITE_MEAN, LITE_STD)])
    x = torch.stack([tf(Image.open(SKIMAGE_DATA / f).convert("RGB")) for f in ("chelsea.png", "coffee.png")])
    with torch.no_grad():
        top = create_efficientnet_lite(name)(x).topk(3, dim=-1).indices
    assert top[0, 0].item() in CAT_CLASSES and set(top[0, :2].tolist()) <= CAT_CLASSES
    assert top[1, 0].item() == ESPRESSO


def test_minilm_mean_pooling_equals_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    texts = ["a cat asleep on a sofa", "Café au lait, s'il vous plaît!", "rocket launch at night " * 40]
    ours = create_minilm().encode(texts)
    theirs = SentenceTransformer(str(minilm_path()), device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(ours, theirs.cpu(), rtol=1e-4, atol=1e-5)
    sims = ours @ ours.T
    assert sims[0, 1] < sims[0, 0] and torch.allclose(ours.norm(dim=-1), torch.ones(3), atol=1e-5)
