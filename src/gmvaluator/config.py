"""Settings of a valuation run: defaults < TOML file < command-line flags.

``ValueConfig`` is the one declaration of each setting: its default, its help text and, where
there are, its choices (dataclass field metadata). The command line (``gmvaluator.cli``), the
TOML ``[value]`` table, a finished run's ``config.json`` and the ``Valuator``'s defaults all
derive from it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Sequence
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from gmvaluator.errors import InputError

T = TypeVar("T")


def _setting(
    default: T,
    about: str,
    *,
    choices: Sequence[str] = (),
    shown: str | None = None,
    valuator: str | None = None,
) -> T:
    """A field of ``ValueConfig``: ``about`` (one phrase for help; the choices are added),
    ``shown`` (the default as ``--help`` shows it, when None stands for something), and the
    ``Valuator`` parameter that it sets, if any."""
    meta = {"help": about, "choices": tuple(choices), "shown": shown, "valuator": valuator}
    return field(default=default, metadata=meta)


def _kind_setting(role: str) -> Any:
    """``train_kind`` / ``generated_kind``: what a source holds (None: tell from the source)."""
    return _setting(
        None,
        f"What the {role} source holds (settles whether a .txt lists image paths or texts)",
        choices=("auto", "image", "text", "embedding"),
        shown="auto",
    )


@dataclass(frozen=True)
class ValueConfig:
    """Everything that decides the numbers a valuation run writes.

    ``embedder`` None picks the default for the source kind (efficientnet-lite0 for images,
    minilm for text, precomputed for embeddings). Index settings left None are resolved by
    ``gmvaluator.search.resolve_params`` and the resolved values are recorded in the run.
    ``rerank`` picks the distance d_ij (``gmvaluator.core.rerank``); ``quality_norm`` how quality
    scores become q_j (``gmvaluator.quality.normalize``).
    """

    embedder: str | None = _setting(
        None,
        "Embedder, e.g. pixels, efficientnet-lite0, minilm or precomputed",
        shown="by source kind",
    )
    batch_size: int = _setting(64, "Embedding batch size")
    k: int = _setting(10, "Training matches per generated sample", valuator="k")
    index: str = _setting(
        "auto",
        "Index that recalls the candidates (each followed by an exact re-rank)",
        choices=("auto", "exact", "pq", "ivfpq"),
        valuator="index",
    )
    metric: str = _setting(
        "cosine",
        "Distance of the embeddings",
        choices=("cosine", "sqeuclidean"),
        valuator="metric",
    )
    credit: str = _setting(
        "calibrated",
        "Credit rule: calibrated (T, attributable share and density from the training set's "
        "own neighbour distances) or paper (the GMValuator formula: T = 1, every sample pays "
        "in full)",
        choices=("calibrated", "paper"),
        valuator="credit",
    )
    temperature: float | str = _setting(
        "auto",
        "Softmax temperature T: auto (calibrated: 1.5 x each generated sample's distance to its "
        "best match, at least the 1 % quantile of the training set's nearest-neighbour "
        "distances; paper: 1) or a number",
        valuator="temperature",
    )
    m: int | None = _setting(None, "PQ sub-vectors", shown="by dimension", valuator="m")
    nbits: int | None = _setting(
        None, "Bits per PQ code", shown="8, fewer for few items", valuator="nbits"
    )
    nlist: int | None = _setting(None, "IVF lists", shown="about 4 sqrt(n)", valuator="nlist")
    nprobe: int | None = _setting(
        None, "IVF lists probed per query", shown="nlist / 8; tuned by auto", valuator="nprobe"
    )
    n_candidates: int | None = _setting(
        None,
        "K': candidates re-ranked exactly (PQ) or by a perceptual re-rank",
        shown="max(10k, 100)",
        valuator="n_candidates",
    )
    recall_sample: int = _setting(
        1000, "Generated samples on which recall@k is measured", valuator="recall_sample"
    )
    target_recall: float = _setting(
        0.99, "index auto: recall@k to tune the index to", valuator="target_recall"
    )
    expected_queries: int | None = _setting(
        None,
        "index auto: generated samples the index will value in all, with later --append runs "
        "and serve (more favour IVF-PQ's one-time build)",
        shown="this run's",
    )
    seed: int = _setting(0, "Random seed", valuator="random_state")
    text_column: str | None = _setting(None, "Text column of Parquet/JSONL")
    train_kind: str | None = _kind_setting("training")
    generated_kind: str | None = _kind_setting("generated")
    shard_size: int = _setting(4096, "Items per embedding shard (what a killed run resumes)")
    embedding_dtype: str = _setting(
        "float32",
        "Number type of the stored embeddings (float16 halves disk and page cache)",
        choices=("float32", "float16"),
    )
    threads: int | None = _setting(
        None,
        "CPU threads of the embedders, faiss and the re-rank (the values do not change)",
        shown="OMP_NUM_THREADS, else every usable core",
    )
    device: str = _setting(
        "auto",
        "Where the embedders run (auto: a usable GPU, else the CPU)",
        choices=("auto", "cpu", "cuda"),
    )
    runtime: str = _setting(
        "auto",
        "How the built-in torch embedders run (auto: onnx when installed; onnx: ONNX Runtime, "
        "checked against torch on first use; torch: the reference)",
        choices=("auto", "onnx", "torch"),
    )
    rerank: str = _setting(
        "exact",
        "Re-rank that measures the distance d_ij",
        choices=("exact", "none", "sscd", "sscd-distilled", "lpips", "dreamsim"),
    )
    quality_norm: str = _setting(
        "raw",
        "How quality scores become q_j",
        choices=("raw", "minmax", "rank", "divide-by-max"),
    )
    model: str | None = _setting(
        None,
        "Model file (.py defining load_model) whose gradients re-score each generated sample's "
        "shortlist: the model-aware values",
        shown="none: training-free values",
    )
    checkpoints: str | None = _setting(
        None,
        "Comma-separated checkpoints, each given to the model file's load_model: an ensemble",
        shown="the model file's own",
    )
    model_output: str = _setting(
        "loss", "Model-aware: the function differentiated on the generated samples"
    )
    shortlist: int = _setting(200, "Model-aware: candidates re-scored per generated sample")
    by_label: str = _setting(
        "auto",
        "Model-aware: shortlist only training items of the generated sample's label (auto: when "
        "both sides have labels)",
        choices=("auto", "yes", "no"),
    )
    ridge: float = _setting(
        100.0, "Model-aware: ridge lambda, as a multiple of the kernel's mean eigenvalue"
    )
    draws: int = _setting(8, "Model-aware: noise draws averaged per training item")
    output_draws: int = _setting(32, "Model-aware: noise draws averaged per generated sample")
    gradient_dim: int = _setting(2048, "Model-aware: dimensions of the projected gradients")

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> ValueConfig:
        """The configuration recorded in a run's ``config.json`` (other keys are ignored)."""
        return cls(**{f.name: settings[f.name] for f in fields(cls) if f.name in settings})

    def valuator_params(self) -> dict[str, Any]:
        """The ``Valuator`` parameters these settings give."""
        return {
            f.metadata["valuator"]: getattr(self, f.name)
            for f in fields(self)
            if f.metadata["valuator"] is not None
        }

    def source_kind(self, role: str) -> str | None:
        """The kind asked of the source of ``role`` (``train``, or a generated batch)."""
        return self.train_kind if role == "train" else self.generated_kind

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Settings that change the speed of a run, not its numbers: a run resumes under other values.
SPEED_ONLY = ("threads", "device")


def setting(name: str) -> Field[Any]:
    """The declaration of setting ``name`` (a field of ``ValueConfig``)."""
    try:
        return _FIELDS[name]
    except KeyError:
        raise InputError(
            f"unknown setting {name!r}; known settings are {sorted(_FIELDS)}."
        ) from None


def choices(name: str) -> tuple[str, ...]:
    """The values setting ``name`` may take (empty: any of its type)."""
    return tuple(setting(name).metadata["choices"])


def help_text(name: str) -> str:
    """One sentence on setting ``name``, with its choices."""
    meta = setting(name).metadata
    text = meta["help"]
    if meta["choices"]:
        *first, last = meta["choices"]
        text += f": {', '.join(first)} or {last}" if first else f": {last}"
    return text + "."


def shown_default(name: str) -> str | None:
    """The default of setting ``name`` as help shows it (None: nothing to show)."""
    f = setting(name)
    if f.metadata["shown"] is not None:
        return str(f.metadata["shown"])
    return None if f.default is None else str(f.default)


def load_config(
    path: str | Path | None = None, *, command_keys: Collection[str] = (), **flags: Any
) -> ValueConfig:
    """Defaults, updated by the ``[value]`` table of a TOML file, then by non-None flags.

    ``command_keys`` are the table's other keys that the calling command takes itself (its
    flags that are not settings); they are accepted and left to it."""
    cfg = ValueConfig()
    if path is not None:
        table = read_value_table(Path(path), command_keys)
        cfg = replace(cfg, **{key: v for key, v in table.items() if key in _FIELDS})
    given = {key: v for key, v in flags.items() if v is not None}
    unknown = sorted(set(given) - set(_FIELDS))
    if unknown:
        raise InputError(f"unknown settings {unknown}.")
    cfg = replace(cfg, **given)
    return replace(cfg, temperature=parse_temperature(cfg.temperature))


def parse_temperature(value: Any) -> float | str:
    """``auto`` or a positive number (a flag or a TOML string like "0.05" becomes a float)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        t = float(value)
    except (TypeError, ValueError):
        t = float("nan")
    if not (t > 0 and t != float("inf")):
        raise InputError(
            f"The 'temperature' setting must be auto or a number in the range (0, inf). "
            f"Got {value!r} instead.",
            param="temperature",
        )
    return t


def read_value_table(path: str | Path, command_keys: Collection[str] = ()) -> dict[str, Any]:
    """The ``[value]`` table of a TOML file (or its top level), checked to hold only settings
    and ``command_keys``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist. Check the --config path.")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}.") from exc
    table = data.get("value", data)
    known = set(_FIELDS) | set(command_keys)
    unknown = sorted(set(table) - known)
    if unknown:
        raise InputError(
            f"config file {path} has unknown keys {unknown}; known keys are {sorted(known)}."
        )
    return dict(table)


def diff_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two settings dictionaries."""
    return sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))


_FIELDS: dict[str, Field[Any]] = {f.name: f for f in fields(ValueConfig)}
