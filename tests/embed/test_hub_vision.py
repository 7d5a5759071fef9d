"""timm: and open_clip: embedders against the real libraries, with weights files written here.

Both libraries import torchvision, which does not import beside the CPU torch of the main
environment; scripts/test-vision.sh runs this file in one where it does (.venv-vision).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vision_env import import_or_skip

from gmvaluator.embed import get_embedder
from gmvaluator.errors import InputError, MissingDependencyError

NEEDS = "timm, open_clip"
torch = import_or_skip("torch", NEEDS)
torchvision = import_or_skip("torchvision", NEEDS)
timm = import_or_skip("timm", NEEDS)
open_clip = import_or_skip("open_clip", NEEDS)
from safetensors.torch import save_file  # noqa: E402
from torchvision import transforms  # noqa: E402


@pytest.fixture(scope="module")
def digits() -> list[Image.Image]:
    """Six real 8x8 scans of the digits 0 to 5."""
    from gmvaluator.sources import load_source

    return list(load_source("builtin:digits[:6]").items)


def _save(state: dict[str, object], folder: Path, stem: str) -> tuple[Path, Path]:
    """The state dict as .safetensors and as .pth (wrapped in "state_dict", as trainers do)."""
    state = {k: v.detach().contiguous() for k, v in state.items()}  # type: ignore[attr-defined]
    save_file(state, str(folder / f"{stem}.safetensors"))
    torch.save({"state_dict": state}, folder / f"{stem}.pth")
    return folder / f"{stem}.safetensors", folder / f"{stem}.pth"


def _reference_batch(images: list[Image.Image], size: int, mean, std):  # type: ignore[no-untyped-def]
    """torchvision's reading of the same preprocessing: squash to size x size, bilinear."""
    t = transforms.Compose([
        transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.ToTensor(), transforms.Normalize(mean, std),
    ])  # fmt: skip
    return torch.stack([t(im.convert("RGB")) for im in images])


def _check_varied(x: np.ndarray) -> None:
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(len(x), 1)]
    assert d.min() > 1e-3 * np.linalg.norm(x, axis=1).mean(), "two digits got the same vector"


def _vary_batch_norms(model) -> None:  # type: ignore[no-untyped-def]
    """Batch-norm statistics that must be loaded, not the defaults, and no zero-initialised
    scales, which leave a random residual network nearly blind to its input."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


@pytest.fixture(scope="module")
def timm_weights(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Randomly initialised timm models with their classifier, saved as trainers save them."""
    folder = tmp_path_factory.mktemp("timm")
    out = {}
    for seed, arch in enumerate(("resnet18", "convnext_atto")):
        torch.manual_seed(seed)
        model = timm.create_model(arch, pretrained=False, num_classes=10).eval()
        _vary_batch_norms(model)
        out[arch] = (model, *_save(model.state_dict(), folder, arch))
    return out


@pytest.mark.parametrize("arch", ["resnet18", "convnext_atto"])
def test_timm_embeddings_equal_the_models_own_pooled_features(timm_weights, digits, arch):
    model, safetensors, pth = timm_weights[arch]
    emb = get_embedder(f"timm:{arch}={safetensors}")
    x = emb.embed_batch(digits)
    width = model.num_features
    assert x.shape == (6, width) and x.dtype == np.float32 and np.isfinite(x).all()
    _check_varied(x)

    cfg = timm.data.resolve_data_config({}, model=model)
    assert emb.settings()["image_size"] == cfg["input_size"][-1]
    np.testing.assert_allclose(emb.settings()["mean"], cfg["mean"])
    batch = _reference_batch(digits, cfg["input_size"][-1], cfg["mean"], cfg["std"])
    np.testing.assert_allclose(emb.prepare_batch(digits), batch.numpy(), atol=1e-5)
    with torch.inference_mode():  # convnext's head.norm comes before its classifier
        ref = model.forward_head(model.forward_features(batch), pre_logits=True).numpy()
    np.testing.assert_allclose(x, ref, rtol=1e-4, atol=1e-4)

    other = get_embedder(f"timm:{arch}={pth}")
    np.testing.assert_allclose(other.embed_batch(digits), x, rtol=1e-5, atol=1e-6)
    assert other.version != emb.version  # another file, another cache key


def test_timm_weights_of_another_model_are_refused(timm_weights, digits):
    _, resnet, _ = timm_weights["resnet18"]
    emb = get_embedder(f"timm:convnext_atto={resnet}")
    with pytest.raises(InputError, match=r"do not fit timm model 'convnext_atto'.*that very model"):
        emb.embed_batch(digits[:1])


def test_timm_missing_weights_name_the_file_and_the_fix(tmp_path):
    missing = tmp_path / "r18.safetensors"
    with pytest.raises(MissingDependencyError, match=r"r18.safetensors' does not exist.*=PATH"):
        get_embedder(f"timm:resnet18={missing}")
    with pytest.raises(MissingDependencyError, match=r"'resnet18' needs a local weights file"):
        get_embedder("timm:resnet18")


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory):  # type: ignore[no-untyped-def]
    """open_clip's ViT-S-32 (image and text towers) with random weights, saved whole."""
    folder = tmp_path_factory.mktemp("open_clip")
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-S-32", pretrained=None).eval()
    return (model, *_save(model.state_dict(), folder, "vit_s_32"))


def test_open_clip_embeddings_equal_the_models_image_features(clip_weights, digits):
    model, safetensors, pth = clip_weights
    emb = get_embedder(f"open_clip:ViT-S-32={safetensors}")
    x = emb.embed_batch(digits)
    assert x.shape == (6, 384) and x.dtype == np.float32 and np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    _check_varied(x)

    pre = open_clip.get_model_preprocess_cfg(model)  # CLIP's mean and std, not ImageNet's
    settings = emb.settings()
    size = pre["size"][-1] if isinstance(pre["size"], tuple | list) else pre["size"]
    assert settings["image_size"] == size == 224
    np.testing.assert_allclose(settings["mean"], pre["mean"])
    np.testing.assert_allclose(settings["std"], pre["std"])
    batch = _reference_batch(digits, size, pre["mean"], pre["std"])
    with torch.inference_mode():
        ref = torch.nn.functional.normalize(model.encode_image(batch), dim=-1).numpy()
    np.testing.assert_allclose(x, ref, rtol=1e-4, atol=1e-5)

    other = get_embedder(f"open_clip:ViT-S-32={pth}")
    np.testing.assert_allclose(other.embed_batch(digits), x, rtol=1e-5, atol=1e-6)


def test_open_clip_input_size_is_the_architectures_own(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"never read: settings need no model")
    emb = get_embedder(f"open_clip:ViT-B-16-SigLIP-256={tmp_path / 'w.safetensors'}")
    assert emb.settings()["image_size"] == 256
    sized = get_embedder(f"open_clip:RN50={tmp_path / 'w.safetensors'}", image_size=160)
    assert sized.settings()["image_size"] == 160


def test_open_clip_bad_weights_and_names_are_input_errors(clip_weights, digits, tmp_path):
    _, safetensors, _ = clip_weights
    emb = get_embedder(f"open_clip:ViT-S-16={safetensors}")
    with pytest.raises(InputError, match=r"do not fit open_clip model 'ViT-S-16'.*that very model"):
        emb.embed_batch(digits[:1])
    with pytest.raises(InputError, match=r"open_clip has no model 'RN5'.*list_models"):
        get_embedder(f"open_clip:RN5={safetensors}").embed_batch(digits[:1])


def test_open_clip_missing_weights_name_the_file_and_the_fix(tmp_path):
    missing = tmp_path / "rn50.pth"
    with pytest.raises(MissingDependencyError, match=r"rn50.pth' does not exist.*RN50=PATH"):
        get_embedder(f"open_clip:RN50={missing}")
