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
