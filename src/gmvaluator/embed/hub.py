"""Embedders from models the user already has on disk: ``hf:PATH``, ``timm:NAME[=WEIGHTS]`` and
``open_clip:NAME[=WEIGHTS]``. Nothing is downloaded: a missing file is an error that names it.

- ``hf:PATH`` is a folder saved by transformers (``save_pretrained``) or sentence-transformers.
  A folder with ``modules.json`` is a sentence-transformers text model (unit-norm sentence
  embeddings); one with a tokenizer is a text model (mean of the last hidden states over the
  tokens, L2-normalised); one with ``preprocessor_config.json`` is a vision model (its pooled
  output, else the mean of its last hidden states). Images are resized to the processor's size
  and normalised with its mean and std, read from that JSON (no torchvision needed).
- ``timm:NAME=WEIGHTS`` builds timm's NAME without its classifier and loads WEIGHTS (a
  ``.safetensors`` or ``.pth`` state dict); ``open_clip:NAME=WEIGHTS`` likewise with open_clip's
  image tower. Images are resized (bilinear, no crop) to the architecture's input size and
  normalised with its mean and std, as the library's configuration of NAME gives them. Both
  libraries are optional extras.

``version`` is a hash of the weights files, so the embedding cache and resumed runs never mix
vectors of different weights under one name.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gmvaluator.embed.deps import dist_version, import_optional, require
from gmvaluator.errors import InputError, MissingDependencyError
from gmvaluator.sources.base import Kind

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def weights_digest(paths: Sequence[Path]) -> str:
    """A short SHA-256 over the weights files (name, size and bytes), read in 1 MiB blocks."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + str(p.stat().st_size).encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _missing(what: str, path: Path, fix: str) -> MissingDependencyError:
    return MissingDependencyError(f"{what}: {str(path)!r} does not exist. {fix}")


class HFEmbedder:
    """A transformers or sentence-transformers model from a local folder (``hf:PATH``)."""

    def __init__(self, path: str, device: str = "cpu", max_length: int = 256) -> None:
        self.path = Path(path).expanduser()
        fix = (
            "Save the model there with save_pretrained() on a machine that has it (or copy the "
            "folder of the Hugging Face cache), then pass hf:FOLDER."
        )
        if not self.path.is_dir():
            raise _missing("the hf embedder needs a local model folder", self.path, fix)
        weights = [p for p in self.path.rglob("*") if p.suffix in _WEIGHT_SUFFIXES]
        if not (self.path / "config.json").is_file() or not weights:
            raise MissingDependencyError(
                f"the hf embedder found no config.json and weights file (*.safetensors, *.bin) "
                f"in {str(self.path)!r}. {fix}"
            )
        require("transformers", "transformers", "the hf embedder")
        require("torch", "torch", "the hf embedder")
        if (self.path / "modules.json").is_file():
            self.flavour = "sentence-transformers"
            require("sentence_transformers", "sentence-transformers", "the hf embedder")
        elif (self.path / "preprocessor_config.json").is_file():
            self.flavour = "vision"
        elif any((self.path / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
            self.flavour = "text"
        else:
            raise InputError(
                f"cannot tell what {str(self.path)!r} embeds: it has neither modules.json, "
                "preprocessor_config.json nor a tokenizer. Save the processor or tokenizer too."
            )
        self.kind: Kind = "image" if self.flavour == "vision" else "text"
        self.name = f"hf:{self.path.name}"
        self.device = device
        self.max_length = max_length
        self.version = weights_digest(weights)

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "flavour": self.flavour,
            "transformers": dist_version("transformers"),
        }
        if self.flavour == "vision":
            out.update(_image_settings(self.path))
        else:
            out["max_length"] = self.max_length
        return out

    def embed_batch(self, items: Sequence[Any]) -> np.ndarray:
        import torch

        model, extra = _load_hf(str(self.path), self.flavour, self.device)
        with torch.inference_mode():
            if self.flavour == "sentence-transformers":
                vecs = model.encode(list(items), batch_size=max(1, len(items)),
                                    convert_to_numpy=True, normalize_embeddings=True,
                                    show_progress_bar=False)  # fmt: skip
                return np.ascontiguousarray(vecs, dtype=np.float32)
            if self.flavour == "text":
                enc = extra(list(items), padding=True, truncation=True,
                            max_length=self.max_length, return_tensors="pt")  # fmt: skip
                out = model(**enc.to(self.device)).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
                pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            else:
                x = torch.from_numpy(_preprocess(items, _image_settings(self.path)))
                out = model(pixel_values=x.to(self.device))
                pooled = getattr(out, "pooler_output", None)
                if pooled is None:
                    pooled = out.last_hidden_state.mean(dim=1)
        return np.ascontiguousarray(pooled.float().cpu().numpy(), dtype=np.float32)


def _image_settings(path: Path) -> dict[str, Any]:
    cfg = json.loads((path / "preprocessor_config.json").read_text())
    size = cfg.get("size", 224)
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge") or 224
    return {
        "image_size": int(size),
        "mean": [float(v) for v in cfg.get("image_mean", [0.5, 0.5, 0.5])],
        "std": [float(v) for v in cfg.get("image_std", [0.5, 0.5, 0.5])],
        "rescale": float(cfg.get("rescale_factor", 1 / 255)),
    }


def _preprocess(images: Sequence[Image.Image], s: dict[str, Any]) -> np.ndarray:
    n = s["image_size"]
    batch = np.stack(
        [np.asarray(im.convert("RGB").resize((n, n), Image.Resampling.BILINEAR)) for im in images]
    ).astype(np.float32)
    batch = (batch * s["rescale"] - np.array(s["mean"], np.float32)) / np.array(
        s["std"], np.float32
    )
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)


@functools.lru_cache(maxsize=4)
def _load_hf(path: str, flavour: str, device: str) -> tuple[Any, Any]:
    if flavour == "sentence-transformers":
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(path, device=device, local_files_only=True), None
    from transformers import AutoModel

    model = AutoModel.from_pretrained(path, local_files_only=True).eval().to(device)
    if flavour == "text":
        from transformers import AutoTokenizer

        return model, AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model, None


class _StateDictImageEmbedder:
    """Shared parts of ``timm:`` and ``open_clip:``: a named architecture and a weights file."""

    library = ""
    module = ""
    kind: Kind = "image"
    #: arch -> (input size, mean, std) of the architecture, read without building the model
    read_config: Callable[[str], tuple[int, list[float], list[float]]]
    #: (arch, weights file, device) -> the model, built once per process and in eval mode
    load_model: Callable[[str, str, str], Any]

    def __init__(self, spec: str, device: str = "cpu", image_size: int | None = None) -> None:
        arch, _, weights = spec.partition("=")
        lib = self.library
        if not arch:
            raise InputError(f"{lib}: needs a model name: {lib}:NAME=WEIGHTS.")
        path = Path(weights).expanduser() if weights else None
        if path is None or not path.is_file():
            shown = Path(weights) if weights else Path(f"<weights of {arch}>")
            raise _missing(
                f"the {lib} embedder {arch!r} needs a local weights file", shown,
                f"Save the model's state dict (.safetensors or .pth) on a machine that has it "
                f"and pass {lib}:{arch}=PATH.",
            )  # fmt: skip
        require(self.module, lib.replace("_", "-") + ("-torch" if lib == "open_clip" else ""),
                f"the {lib} embedder")  # fmt: skip
        self.arch, self.weights = arch, path
        self.name = f"{lib}:{arch}"
        self.device = device
        self.image_size = image_size  # None: the architecture's own
        self.version = weights_digest([path])

    def settings(self) -> dict[str, Any]:
        size, mean, std = self._preprocessing()
        return {"arch": self.arch, "image_size": size, "mean": mean, "std": std,
                self.library: dist_version(self.library)}  # fmt: skip

    def embed_batch(self, items: Sequence[Any]) -> np.ndarray:
        return self.embed_prepared(self.prepare_batch(items))

    def prepare_batch(self, items: Sequence[Any]) -> np.ndarray:
        """The normalised float32 (B, 3, H, W) batch."""
        size, mean, std = self._preprocessing()
        s = {"image_size": size, "mean": mean, "std": std, "rescale": 1 / 255}
        return _preprocess(items, s)

    def _preprocessing(self) -> tuple[int, list[float], list[float]]:
        """Input size, mean and std: the architecture's own, read without building the model."""
        size, mean, std = self.read_config(self.arch)
        return self.image_size or size, mean, std

    def embed_prepared(self, batch: np.ndarray) -> np.ndarray:
        import torch

        model = self.load_model(self.arch, str(self.weights), self.device)
        with torch.inference_mode():
            out = self._forward(model, torch.from_numpy(batch).to(self.device))
        return np.ascontiguousarray(out.float().cpu().numpy(), dtype=np.float32)

    def _forward(self, model: Any, x: Any) -> Any:
        return model(x)


_IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def load_state_dict(path: Path) -> dict[str, Any]:
    """A state dict from .safetensors or a torch file (weights only, never pickled code)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return dict(state.get("state_dict", state)) if isinstance(state, dict) else state


@functools.lru_cache(maxsize=8)
def _timm_config(arch: str) -> tuple[int, list[float], list[float]]:
    timm = import_optional("timm", "timm", "the timm embedder")
    get = getattr(timm, "get_pretrained_cfg", None)  # timm >= 0.9
    cfg = get(arch) if get is not None else None
    if cfg is None:  # an architecture without a default configuration
        return 224, list(_IMAGENET[0]), list(_IMAGENET[1])
    return int(cfg.input_size[-1]), [float(v) for v in cfg.mean], [float(v) for v in cfg.std]


@functools.lru_cache(maxsize=2)
def _load_timm(arch: str, weights: str, device: str) -> Any:
    timm = import_optional("timm", "timm", "the timm embedder")
    model = timm.create_model(arch, pretrained=False, num_classes=0)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # the classifier is not built (num_classes=0), so its tensors are dropped; what else sits
    # under head. (ConvNeXt's head.norm, say) is kept
    state = {k: v for k, v in load_state_dict(Path(weights)).items() if k in shapes}
    missing = [k for k in shapes if k not in state]
    wrong = [k for k in shapes if k in state and tuple(state[k].shape) != shapes[k]]
    if missing or wrong:
        example = missing[0] if missing else f"{wrong[0]} of shape {tuple(state[wrong[0]].shape)}"
        raise InputError(
            f"weights {weights!r} do not fit timm model {arch!r}: {len(missing) + len(wrong)} "
            f"parameters are missing or of the wrong shape (e.g. {example!r}). Pass the weights "
            "saved from that very model."
        )
    model.load_state_dict(state, strict=False)
    return model.eval().to(device)


@functools.lru_cache(maxsize=8)
def _open_clip_config(arch: str) -> tuple[int, list[float], list[float]]:
    open_clip = import_optional("open_clip", "open-clip-torch", "the open_clip embedder")
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise InputError(
            f"open_clip has no model {arch!r}. Choose one of open_clip.list_models(), "
            "e.g. open_clip:ViT-B-32=WEIGHTS."
        )
    pre = cfg.get("preprocess_cfg", {})
    size = cfg.get("vision_cfg", {}).get("image_size", pre.get("size", 224))
    size = size[0] if isinstance(size, list | tuple) else size
    mean, std = pre.get("mean", OPENAI_DATASET_MEAN), pre.get("std", OPENAI_DATASET_STD)
    return int(size), [float(v) for v in mean], [float(v) for v in std]


@functools.lru_cache(maxsize=2)
def _load_open_clip(arch: str, weights: str, device: str) -> Any:
    open_clip = import_optional("open_clip", "open-clip-torch", "the open_clip embedder")
    _open_clip_config(arch)  # an unknown name is an InputError, not open_clip's RuntimeError
    try:
        model = open_clip.create_model(arch, pretrained=weights, device=device)
    except RuntimeError as e:
        if "state_dict" not in str(e):
            raise
        lines = [ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()]
        raise InputError(
            f"weights {weights!r} do not fit open_clip model {arch!r}: "
            f"{(lines[0] if lines else str(e))[:200]}. Pass the weights saved from that very model."
        ) from e
    return model.eval()


class TimmEmbedder(_StateDictImageEmbedder):
    """``timm:NAME=WEIGHTS``: timm's NAME without its classifier (pooled features)."""

    library = module = "timm"
    read_config = staticmethod(_timm_config)
    load_model = staticmethod(_load_timm)


class OpenClipEmbedder(_StateDictImageEmbedder):
    """``open_clip:NAME=WEIGHTS``: open_clip's image tower of NAME, unit-norm embeddings."""

    library = module = "open_clip"
    read_config = staticmethod(_open_clip_config)
    load_model = staticmethod(_load_open_clip)

    def _forward(self, model: Any, x: Any) -> Any:
        import torch

        return torch.nn.functional.normalize(model.encode_image(x), dim=-1)


LOADERS: dict[str, Any] = {"hf": HFEmbedder, "timm": TimmEmbedder, "open_clip": OpenClipEmbedder}
