"""Perceptual distances for the re-rank stage, from local weights files only.

LPIPS (Zhang et al. 2018) is built here in plain torch, so it needs neither the ``lpips``
package's code nor torchvision (whose PyPI builds do not import beside every torch build):

    d(x, y) = sum over layers l of  mean over pixels of  w_l . (f_l(x) - f_l(y))**2

where f_l are the channel-normalised activations of five layers of an ImageNet backbone
(AlexNet by default, or VGG-16) and w_l the learned per-channel weights. Two weights files:

- the backbone: torchvision's ImageNet state dict (``alexnet-owt-7be5be79.pth``,
  ``vgg16-397923af.pth``), from ``$GMVALUATOR_LPIPS_WEIGHTS``, else from torch's hub cache
  (``torch.hub.get_dir()/checkpoints``) when an earlier download put it there;
- the linear layers (a few KB): ``$GMVALUATOR_LPIPS_LINEAR``, else the files the ``lpips``
  package ships (``weights/v0.1/alex.pth``), found without importing the package, so
  ``pip install --no-deps lpips`` is enough.

DreamSim runs through the ``dreamsim`` package, from a folder its own download populated:
``ensemble_lora/``, the three ``*_pretrain.pth*`` files, and what it fetches through torch.hub
into the same folder (``facebookresearch_dino_main/``, ``checkpoints/dino_vitbase16_pretrain.pth``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gmvaluator import env
from gmvaluator.errors import InputError, MissingDependencyError

LPIPS_SIZE = 224
# torchvision's file names for the ImageNet weights (what torch's hub cache holds)
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
# LPIPS v0.1 maps inputs in [-1, 1] to the backbone's ImageNet statistics with these
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _alex_layers() -> list[Any]:
    return [(3, 64, 11, 4, 2), "M", (64, 192, 5, 1, 2), "M", (192, 384, 3, 1, 1),
            (384, 256, 3, 1, 1), (256, 256, 3, 1, 1)]  # fmt: skip


def _vgg_layers() -> list[Any]:
    out: list[Any] = []
    c_in = 3
    for block, (c, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        out += ["M"] if block else []
        out += [(c_in if i == 0 else c, c, 3, 1, 1) for i in range(n)]
        c_in = c
    return out


# torchvision's ``features`` of each backbone (conv as (in, out, kernel, stride, padding), "M"
# for max pooling), and the indices of the ReLUs whose outputs LPIPS compares
NETS = {"alex": (_alex_layers(), (1, 4, 7, 9, 11)), "vgg": (_vgg_layers(), (3, 8, 15, 22, 29))}


def lpips_backbone_path(net: str = "alex") -> Path:
    """The backbone's weights file: ``$GMVALUATOR_LPIPS_WEIGHTS``, else torch's hub cache."""
    given = _env_file(env.LPIPS_WEIGHTS, f"the ImageNet weights of its {net} backbone",
                      _backbone_fix(net))  # fmt: skip
    if given is not None:
        return given
    cached = _hub_dir() / "checkpoints" / BACKBONE_FILES[net]
    if cached.is_file():
        return cached
    raise MissingDependencyError(
        f"LPIPS needs the ImageNet weights of its {net} backbone: {env.LPIPS_WEIGHTS.name} is "
        f"not set and {str(cached)!r} does not exist. {_backbone_fix(net)}"
    )


def _env_file(var: env.EnvVar, what: str, fix: str) -> Path | None:
    """The file the environment variable ``var`` names (None when unset); a missing one is
    refused, saying that LPIPS needs ``what`` and how to ``fix`` it."""
    given = var.path()
    if given is None:
        return None
    path = given.expanduser()
    if not path.is_file():
        raise MissingDependencyError(
            f"LPIPS needs {what}, and {var.name} names {str(path)!r}, which does not exist. {fix}"
        )
    return path


def _backbone_fix(net: str) -> str:
    return (
        f"Copy torchvision's {BACKBONE_FILES[net]} from a machine that has it (its torch hub "
        f"cache) and set {env.LPIPS_WEIGHTS.name}=PATH, or use --rerank exact or sscd."
    )


def _hub_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir())


def lpips_linear_path(net: str = "alex") -> Path:
    """The learned linear layers: ``$GMVALUATOR_LPIPS_LINEAR``, else the lpips package's file."""
    fix = (
        f"Install the package's files with: pip install --no-deps lpips==0.1.4 (its code and "
        f"torchvision are not needed), or set {env.LPIPS_LINEAR.name}=PATH to its weights/v0.1/"
        f"{net}.pth."
    )
    given = _env_file(env.LPIPS_LINEAR, "its linear layers", fix)
    if given is not None:
        return given
    try:
        spec = importlib.util.find_spec("lpips")  # finds the package without running it
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "weights" / "v0.1" / f"{net}.pth"
        if path.is_file():
            return path
    raise MissingDependencyError(
        f"LPIPS needs its linear layers ({net}.pth of the lpips package), which were not found. "
        f"{fix}"
    )


def _build_lpips(net: str) -> Any:
    import torch
    from torch import nn

    class LPIPS(nn.Module):
        """LPIPS v0.1: ``forward(a, b)`` of (B, 3, H, W) batches in [-1, 1] -> (B,) distances."""

        def __init__(self) -> None:
            super().__init__()
            layers, taps = NETS[net]
            mods: list[nn.Module] = []
            width = {}  # channels of each layer's output
            for spec in layers:
                if spec == "M":
                    mods.append(nn.MaxPool2d(3 if net == "alex" else 2, 2))
                    continue
                c_in, c_out, k, s, p = spec
                mods += [nn.Conv2d(c_in, c_out, k, s, p), nn.ReLU()]
                width[len(mods) - 1] = c_out
            self.features = nn.Sequential(*mods)
            self.taps = taps
            self.lins = nn.ModuleList(nn.Conv2d(width[t], 1, 1, bias=False) for t in taps)
            self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
            self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))

        def feats(self, x: torch.Tensor) -> list[torch.Tensor]:
            """The unit-normalised (over channels) activations of the compared layers."""
            h = (x - self.get_buffer("shift")) / self.get_buffer("scale")
            out = []
            for i, layer in enumerate(self.features):
                h = layer(h)
                if i in self.taps:
                    out.append(h / (h.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
                    if i == self.taps[-1]:
                        break
            return out

        def compare(self, fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
            total = 0
            for lin, a, b in zip(self.lins, fa, fb, strict=True):
                total = total + lin((a - b) ** 2).mean(dim=(1, 2, 3))
            return total  # type: ignore[return-value]

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.compare(self.feats(a), self.feats(b))

    return LPIPS()


@functools.lru_cache(maxsize=2)
def load_lpips(backbone: str, linear: str, net: str = "alex") -> Any:
    """The LPIPS network with the backbone's ``features.*`` and the linear layers' weights."""
    from gmvaluator.embed.hub import load_state_dict

    model = _build_lpips(net)
    state = {}
    for path, prefix, keep in ((backbone, "features.", "features."), (linear, "lin", "lins.")):
        named = ((_lpips_key(k, prefix, keep), v) for k, v in load_state_dict(Path(path)).items())
        found = {k: v for k, v in named if k is not None}
        if not found:
            raise InputError(
                f"LPIPS weights file {path!r} has no {prefix}* tensors. Pass torchvision's "
                f"{BACKBONE_FILES[net]} as {env.LPIPS_WEIGHTS.name} and the lpips package's "
                f"{net}.pth as {env.LPIPS_LINEAR.name}."
            )
        state.update(found)
    wanted = set(model.state_dict()) - {"shift", "scale"}
    missing = sorted(wanted - set(state))
    shapes = model.state_dict()
    wrong = sorted(k for k in wanted & set(state) if state[k].shape != shapes[k].shape)
    if missing or wrong:
        bad = missing[0] if missing else f"{wrong[0]} of shape {tuple(state[wrong[0]].shape)}"
        raise InputError(
            f"the LPIPS weights ({backbone!r}, {linear!r}) do not fit the {net} network: "
            f"{len(missing) + len(wrong)} tensors missing or of the wrong shape (e.g. {bad}). "
            f"Pass torchvision's {BACKBONE_FILES[net]} and the lpips package's {net}.pth."
        )
    model.load_state_dict({**shapes, **state}, strict=True)
    return model.eval()


def _lpips_key(key: str, prefix: str, keep: str) -> str | None:
    """Our name for a tensor of the backbone (``features.0.weight``) or of the lpips package's
    linear layers (``lin0.model.1.weight`` -> ``lins.0.weight``); None for any other tensor."""
    key = key.removeprefix("module.").removeprefix("net.")
    if prefix == "features.":
        return key if key.startswith("features.") else None
    head, _, rest = key.partition(".")
    if not (head.startswith("lin") and head[3:].isdigit() and rest.endswith("weight")):
        return None
    return f"{keep}{head[3:]}.weight"


def lpips_tensor(image: Image.Image, size: int = LPIPS_SIZE) -> Any:
    """A PIL image as the (1, 3, size, size) float tensor in [-1, 1] that LPIPS compares."""
    import torch

    rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    a = np.asarray(rgb, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


class LpipsDistance:
    """LPIPS between one image and a list of others: ``distances(x, ys) -> (len(ys),)``.

    The weights are found as the module describes; nothing is downloaded."""

    def __init__(self, net: str = "alex", batch_size: int = 16) -> None:
        if net not in NETS:
            raise InputError(f"LPIPS has no backbone {net!r}. Choose one of: alex, vgg.")
        from gmvaluator.embed.deps import require

        require("torch", "torch", "--rerank lpips")
        self.net = net
        self.backbone = lpips_backbone_path(net)
        self.linear = lpips_linear_path(net)
        self.batch_size = batch_size

    def distances(self, x: Image.Image, ys: list[Image.Image]) -> np.ndarray:
        import torch

        model = load_lpips(str(self.backbone), str(self.linear), self.net)
        out = np.empty(len(ys), dtype=np.float64)
        with torch.inference_mode():
            fx = model.feats(lpips_tensor(x))
            for s in range(0, len(ys), self.batch_size):
                part = torch.cat([lpips_tensor(y) for y in ys[s : s + self.batch_size]])
                fy = model.feats(part)
                d = model.compare([f.expand(len(part), -1, -1, -1) for f in fx], fy)
                out[s : s + len(part)] = d.double().numpy()
        return out


def dreamsim_distance(weights: Path) -> Any:
    """DreamSim (Fu et al. 2023) through the ``dreamsim`` package, from the folder its own
    download populated (``cache_dir``): a function of two PIL images -> distance."""
    from gmvaluator.embed.deps import import_optional

    import_optional("dreamsim", "dreamsim", "--rerank dreamsim")
    import torch
    from dreamsim import dreamsim

    hub = torch.hub.get_dir()
    try:  # it prints where it reads from: keep stdout for the run's summary
        with contextlib.redirect_stdout(sys.stderr):
            model, preprocess = dreamsim(pretrained=True, cache_dir=str(weights), device="cpu")
    finally:  # it points torch.hub at cache_dir, where LPIPS would then look for its backbone
        torch.hub.set_dir(hub)

    def dist(a: Image.Image, b: Image.Image) -> float:
        with torch.inference_mode():
            return float(model(preprocess(a.convert("RGB")), preprocess(b.convert("RGB"))).item())

    return dist
