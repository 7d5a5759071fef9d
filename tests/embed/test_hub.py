"""Local-model embedders (hf:, timm:, open_clip:) with weights files the tests write."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gmvaluator.embed import get_embedder
from gmvaluator.errors import InputError, MissingDependencyError

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A 2-layer ViT with random (seeded) weights and its processor settings, saved to disk."""
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vit")
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, image_size=32, patch_size=8)  # fmt: skip
    transformers.ViTModel(cfg).save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 32, "width": 32}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    ))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A 2-layer BERT with random (seeded) weights and a word-level vocabulary, saved to disk."""
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bert")
    words = ["the", "a", "cat", "dog", "sat", "on", "mat", "ran", "in", "park", "sun", "is",
             "hot", "cold"]  # fmt: skip
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                               *words]) + "\n")  # fmt: skip
    transformers.BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    cfg = transformers.BertConfig(vocab_size=len(words) + 5, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64)  # fmt: skip
    transformers.BertModel(cfg).save_pretrained(path)
    return path


def _photos() -> list[Image.Image]:
    import skimage.data

    return [Image.fromarray(getattr(skimage.data, n)()).convert("RGB")
            for n in ("astronaut", "coffee", "chelsea", "camera")]  # fmt: skip


def test_hf_vision_model_from_a_local_folder(tiny_vit):
    emb = get_embedder(f"hf:{tiny_vit}")
    assert emb.kind == "image" and emb.name == f"hf:{tiny_vit.name}"
    photos = _photos()
    x = emb.embed_batch(photos)
    assert x.shape == (4, 32) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.ptp(x, axis=0).max() > 0  # different images, different vectors
    np.testing.assert_allclose(emb.embed_batch(photos[:1])[0], x[0], atol=1e-5)
    assert emb.settings()["image_size"] == 32 and len(emb.version) == 16


def test_hf_text_model_from_a_local_folder(tiny_bert):
    emb = get_embedder(f"hf:{tiny_bert}")
    assert emb.kind == "text"
    v = emb.embed_batch(["the cat sat on the mat", "the cat sat on the mat", "sun is hot"])
    assert v.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(v[0], v[1], atol=1e-6)
    assert not np.allclose(v[0], v[2])


def test_other_weights_other_version(tiny_vit, tmp_path):
    import shutil

    import torch

    copy = tmp_path / tiny_vit.name
    shutil.copytree(tiny_vit, copy)
    assert get_embedder(f"hf:{copy}").version == get_embedder(f"hf:{tiny_vit}").version
    torch.manual_seed(1)
    cfg = transformers.ViTConfig.from_pretrained(copy)
    transformers.ViTModel(cfg).save_pretrained(copy)
    assert get_embedder(f"hf:{copy}").version != get_embedder(f"hf:{tiny_vit}").version


def test_missing_weights_are_named_with_the_fix(tmp_path):
    with pytest.raises(MissingDependencyError, match=r"local model folder.*nope.*save_pretrained"):
        get_embedder(f"hf:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDependencyError, match=r"no config.json and weights file"):
        get_embedder(f"hf:{tmp_path / 'empty'}")
    with pytest.raises(MissingDependencyError, match=r"timm embedder 'resnet18' needs a local"):
        get_embedder("timm:resnet18")
    with pytest.raises(MissingDependencyError, match=r"missing.pth' does not exist.*=PATH"):
        get_embedder(f"open_clip:ViT-B-32={tmp_path / 'missing.pth'}")
    with pytest.raises(InputError, match=r"or a local model: hf:PATH"):
        get_embedder("clip")


def test_timm_weights_file_written_here(tmp_path):
    timm = pytest.importorskip("timm")  # needs torchvision, absent from CPU-only installs
    import torch

    model = timm.create_model("resnet18", pretrained=False, num_classes=0)
    torch.save(model.state_dict(), tmp_path / "r18.pth")
    emb = get_embedder(f"timm:resnet18={tmp_path / 'r18.pth'}")
    assert emb.embed_batch(_photos()[:2]).shape == (2, 512)


def test_hf_sentence_transformers_folder(tiny_bert, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer

    word = Transformer(str(tiny_bert))
    model = st.SentenceTransformer(modules=[word, Pooling(32)], device="cpu")
    model.save(str(tmp_path / "st"))
    emb = get_embedder(f"hf:{tmp_path / 'st'}")
    assert emb.kind == "text" and emb.settings()["flavour"] == "sentence-transformers"
    v = emb.embed_batch(["the cat sat", "the dog ran in the park"])
    assert v.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    ref = model.encode(["the cat sat"], normalize_embeddings=True)
    np.testing.assert_allclose(v[0], ref[0], atol=1e-5)


def _stand_in_timm(monkeypatch):  # type: ignore[no-untyped-def]
    """timm itself imports torchvision, which cannot be imported beside this torch build. This
    module stands in for it and builds a small real network, so that what runs is our side:
    reading the weights file, dropping the classifier, refusing weights of another model."""
    import importlib.machinery
    import sys
    import types

    import torch

    def create_model(name: str, pretrained: bool = False, num_classes: int = 0):  # type: ignore[no-untyped-def]
        width = {"tiny": 8, "wide": 16}[name]
        layers = [torch.nn.Conv2d(3, width, 5, stride=4), torch.nn.BatchNorm2d(width),
                  torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()]  # fmt: skip
        net = torch.nn.Sequential(*layers)
        if num_classes:
            net.add_module("head", torch.nn.Linear(width, num_classes))
        return net

    fake = types.ModuleType("timm")
    fake.__spec__ = importlib.machinery.ModuleSpec("timm", None)
    fake.create_model = create_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "timm", fake)
    return create_model


def test_timm_loading_code_with_weights_files_written_here(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import save_file

    from gmvaluator.embed.hub import _load_timm

    create_model = _stand_in_timm(monkeypatch)
    _load_timm.cache_clear()
    torch.manual_seed(0)
    trained = create_model("tiny", num_classes=10).eval()  # with a classifier, as saved
    with torch.no_grad():  # non-trivial batch-norm statistics, which must be loaded too
        trained[1].running_mean.uniform_(-1, 1)
        trained[1].running_var.uniform_(0.5, 2)
    state = {k: v.contiguous() for k, v in trained.state_dict().items()}
    save_file(state, str(tmp_path / "tiny.safetensors"))
    torch.save({"state_dict": state}, tmp_path / "tiny.pth")
    photos = _photos()
    emb = get_embedder(f"timm:tiny={tmp_path / 'tiny.safetensors'}")
    x = emb.embed_batch(photos)
    assert x.shape == (4, 8) and np.ptp(x, axis=0).max() > 0
    with torch.inference_mode():  # the same network without its classifier, on our input
        ref = trained[:5](torch.from_numpy(emb.prepare_batch(photos))).numpy()
    np.testing.assert_allclose(x, ref, rtol=1e-5, atol=1e-6)
    y = get_embedder(f"timm:tiny={tmp_path / 'tiny.pth'}").embed_batch(photos)
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    with pytest.raises(InputError, match=r"do not fit timm model 'wide'.*wrong shape.*'0.weight"):
        get_embedder(f"timm:wide={tmp_path / 'tiny.pth'}").embed_batch(photos[:1])
    torch.save({"0.weight": state["0.weight"]}, tmp_path / "part.pth")
    with pytest.raises(InputError, match=r"do not fit timm model 'tiny'.*e.g. '0.bias'"):
        get_embedder(f"timm:tiny={tmp_path / 'part.pth'}").embed_batch(photos[:1])


# how PyPI's torchvision fails beside a torch it was not built for
BROKEN_IMPORT = "raise RuntimeError('operator torchvision::nms does not exist')"


@pytest.mark.parametrize(
    ("spec", "module"), [("timm:resnet18", "timm"), ("open_clip:ViT-B-32", "open_clip")]
)
def test_a_library_that_fails_to_import_is_reported_with_its_cause(
    tmp_path, monkeypatch, spec, module
):
    """What happens here with the PyPI builds: timm and open_clip import torchvision, whose
    compiled operators do not load beside this torch."""
    pkg = tmp_path / "libs" / module
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "libs"))
    (tmp_path / "w.pth").write_bytes(b"weights")
    emb = get_embedder(f"{spec}={tmp_path / 'w.pth'}")
    with pytest.raises(MissingDependencyError, match=r"installed but fails to import: "
                       r"RuntimeError: operator torchvision::nms does not exist"):  # fmt: skip
        emb.embed_batch(_photos()[:1])
