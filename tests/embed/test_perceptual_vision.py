"""--rerank dreamsim and --quality maniqa against the real packages, with weights files written
here in the layouts the packages read (random initialisation: nothing is downloaded).

Both packages import torchvision, which does not import beside the CPU torch of the main
environment; scripts/test-vision.sh runs this file in one where it does (.venv-vision).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from vision_env import import_or_skip

NEEDS = "dreamsim, pyiqa"
torch = import_or_skip("torch", NEEDS)
torchvision = import_or_skip("torchvision", NEEDS)
dreamsim = import_or_skip("dreamsim", NEEDS)
pyiqa = import_or_skip("pyiqa", NEEDS)
timm = import_or_skip("timm", NEEDS)
from dreamsim.feature_extraction import vision_transformer as dino_vits  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

pytestmark = [  # warnings of the packages' own loading code
    pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:Already found a `peft_config` attribute:UserWarning"),
]

# The DINO ViT-B/16 that dreamsim takes from torch.hub ('facebookresearch/dino:main'), with
# weights from torch.hub's checkpoint cache: a stand-in repository with the same entry point.
_DINO_HUBCONF = """
import torch
from dreamsim.feature_extraction.vision_transformer import vit_base

dependencies = ["torch"]
URL = "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth"


def dino_vitb16(pretrained=True, **kwargs):
    model = vit_base(patch_size=16, num_classes=0, **kwargs)
    if pretrained:
        model.load_state_dict(torch.hub.load_state_dict_from_url(URL, map_location="cpu"))
    return model
"""


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    """Three real photos, at most 96 px on their longer side."""
    import skimage.data

    out = []
    for name in ("astronaut", "coffee", "chelsea"):
        im = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        im.thumbnail((96, 96))
        out.append(im)
    return out


@pytest.fixture()
def keep_torch_hub_dir():  # type: ignore[no-untyped-def]
    """dreamsim sets torch.hub's folder to its weights folder: put it back after the test."""
    before = torch.hub.get_dir()
    yield
    torch.hub.set_dir(before)


def _random_vit(patch_size: int = 16) -> dict[str, object]:
    """The state dict of dreamsim's CLIP / OpenCLIP towers loaded as DINO ViTs (a LayerNorm in
    place of pos_drop, and the projection ``proj``)."""
    vit = dino_vits.vit_base(patch_size=patch_size)
    vit.pos_drop = torch.nn.LayerNorm(vit.embed_dim)
    with torch.no_grad():
        for m in vit.modules():  # random LayerNorm affines, so loading them matters
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return {**vit.state_dict(), "proj": torch.randn(768, 512) / 768**0.5}


@pytest.fixture(scope="module")
def dreamsim_weights(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A DreamSim ensemble folder as its download unpacks it: the three backbones, the DINO
    head, the LoRA adapters (random, not the zero init that would leave them inert) and torch
    hub's copy of DINO."""
    from dreamsim.config import dreamsim_args
    from dreamsim.model import PerceptualModel
    from peft import LoraConfig, get_peft_model

    folder = tmp_path_factory.mktemp("dreamsim")
    torch.manual_seed(0)
    repo = folder / "facebookresearch_dino_main"
    repo.mkdir()
    (repo / "hubconf.py").write_text(_DINO_HUBCONF)
    (folder / "checkpoints").mkdir()
    dino = dino_vits.vit_base(patch_size=16, num_classes=0)
    torch.save(dino.state_dict(), folder / "checkpoints" / "dino_vitbase16_pretrain.pth")
    head = dino_vits.DINOHead(768, 2048)
    student = {f"module.head.mlp.{i}.{p}": getattr(head.mlp[i], p).detach()
               for i in (0, 2, 4) for p in ("weight", "bias")}  # fmt: skip
    student["module.head.last_layer.weight"] = head.last_layer.weight.detach()
    torch.save({"student": student}, folder / "dino_vitb16_pretrain.pth")
    for name in ("clip_vitb16", "open_clip_vitb16"):
        torch.save({"state_dict": _random_vit()}, folder / f"{name}_pretrain.pth.tar")

    before = torch.hub.get_dir()
    try:
        model = PerceptualModel(**dreamsim_args["model_config"]["ensemble"], device="cpu",
                                load_dir=str(folder), normalize_embeds=True)  # fmt: skip
    finally:
        torch.hub.set_dir(before)
    config = LoraConfig(r=16, lora_alpha=0.5, lora_dropout=0.3, bias="none",
                        target_modules=["qkv"], init_lora_weights=False)  # fmt: skip
    get_peft_model(model, config).save_pretrained(str(folder / "ensemble_lora"))
    return folder


def test_dreamsim_rerank_distance_is_the_packages_own(
    dreamsim_weights, photos, monkeypatch, keep_torch_hub_dir, capsys
):
    from gmvaluator.core.rerank import check_rerank, perceptual_model

    monkeypatch.setenv("GMVALUATOR_DREAMSIM_WEIGHTS", str(dreamsim_weights))
    check_rerank("dreamsim")
    hub = torch.hub.get_dir()
    capsys.readouterr()
    distances = perceptual_model("dreamsim")
    assert torch.hub.get_dir() == hub  # dreamsim moves it; LPIPS reads its backbone there
    assert capsys.readouterr().out == ""  # stdout is the run's summary
    d = np.array([distances(x, photos) for x in photos])
    assert d.shape == (3, 3) and np.isfinite(d).all()
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-5)
    off = d[~np.eye(3, dtype=bool)]
    assert off.min() > 1e-3, "two different photos are at distance 0"
    np.testing.assert_allclose(d, d.T, rtol=1e-4, atol=1e-6)

    # the package's own model, and its distance written out: 1 - cosine of its embeddings
    model, preprocess = dreamsim.dreamsim(pretrained=True, cache_dir=str(dreamsim_weights),
                                          device="cpu")  # fmt: skip
    with torch.inference_mode():
        e = torch.cat([model.embed(preprocess(x)) for x in photos])
        own = float(model(preprocess(photos[0]), preprocess(photos[1])))
    ref = 1 - torch.nn.functional.cosine_similarity(e[:, None], e[None], dim=-1).numpy()
    np.testing.assert_allclose(d, ref, rtol=1e-4, atol=1e-5)
    assert d[0, 1] == pytest.approx(own, rel=1e-4, abs=1e-6)


@pytest.fixture(scope="module")
def maniqa_weights(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A hub cache holding timm's vit_base_patch8_224 (which MANIQA builds with pretrained=True)
    and a MANIQA checkpoint ("params", as pyiqa reads it), both randomly initialised."""
    import huggingface_hub.constants
    from pyiqa.archs.maniqa_arch import MANIQA

    folder = tmp_path_factory.mktemp("maniqa")
    cfg = timm.get_pretrained_cfg("vit_base_patch8_224")
    repo = folder / "hub" / ("models--" + cfg.hf_hub_id.replace("/", "--"))
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    torch.manual_seed(0)
    vit = timm.create_model("vit_base_patch8_224", pretrained=False)
    state = {k: v.contiguous() for k, v in vit.state_dict().items()}
    save_file(state, str(repo / "snapshots" / commit / "model.safetensors"))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(folder / "hub"))
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        net = MANIQA(pretrained=False, scale=0.8)  # pyiqa's "maniqa" (KonIQ) settings
    with torch.no_grad():  # a positive score bias, so the final ReLU passes the variation
        net.fc_score[3].bias.fill_(0.5)
    torch.save({"params": net.state_dict()}, folder / "ckpt_koniq10k.pt")
    return folder


def test_maniqa_scores_are_pyiqas_own(maniqa_weights, photos, monkeypatch):
    """MANIQA runs ViT-B/8 on 20 crops of 224 x 224 per image (about a minute on one core):
    two photos through gmvaluator's scorer, one of them again through pyiqa."""
    import huggingface_hub.constants

    from gmvaluator.quality import get_quality

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(maniqa_weights / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    weights = maniqa_weights / "ckpt_koniq10k.pt"
    scorer = get_quality(f"maniqa:{weights}")
    assert scorer.settings()["weights"] == "ckpt_koniq10k.pt"
    s = scorer.score(photos[:2], ["a", "b"])
    assert s.shape == (2,) and np.isfinite(s).all() and (s > 0).all()
    assert abs(s[0] - s[1]) > 1e-4 * s.mean(), "two photos got the same score"

    metric = pyiqa.create_metric("maniqa", device="cpu", pretrained_model_path=str(weights))
    x = torchvision.transforms.functional.to_tensor(photos[0])[None]
    with torch.inference_mode():
        ref = float(metric(x).item())
    assert s[0] == pytest.approx(ref, rel=1e-4, abs=1e-6)
