"""What a run owes to whom: contributors, opt-out policy, near-copy flags and the ledger.

``RunAccounting`` is what the ``value`` pipeline and incremental appends share: it chooses the
training rows that may be matched, maps results back onto every row, flags near copies, writes
``RUN/contributors.parquet`` and records every credit in the ledger.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gmvaluator.core.result import ValuationResult, write_parquet
from gmvaluator.core.valuator import Valuator
from gmvaluator.errors import InputError
from gmvaluator.files import hash_strings, read_json
from gmvaluator.rights import nearcopy
from gmvaluator.rights.contributors import TrainingRights, contributors_frame, resolve_rights
from gmvaluator.sources import Dataset

#: ``ledger`` value that means "RUN/ledger.sqlite" (the default); "none" turns the ledger off.
LEDGER_IN_RUN = "run"
LEDGER_OFF = "none"


@dataclass(frozen=True)
class AccountingOptions:
    """Settings of the accounting extras of a run.

    ``contributors``: CSV of ``id,contributor`` overriding the source's contributor column.
    ``opt_out``: ``flag`` or ``exclude``. ``near_copy_quantile``: quantile of the training set's
    own nearest-neighbour distances used as the near-copy threshold; ``near_copy_embedder``:
    ``auto`` (SSCD descriptors of the matched images when SSCD is installed, else the run's
    space), ``run`` (the run's embedding space) or a copy-detection embedder such as ``sscd``
    whose descriptors then cover every training item (see ``gmvaluator.rights.nearcopy``).
    ``ledger``: ``run`` (``RUN/ledger.sqlite``), ``none``, a file path or a ``postgresql://`` URL.
    """

    contributors: str | None = None
    opt_out: str = "flag"
    near_copy_quantile: float = nearcopy.DEFAULT_QUANTILE
    ledger: str = LEDGER_IN_RUN
    near_copy_embedder: str = nearcopy.AUTO

    def __post_init__(self) -> None:
        nearcopy.check_space(self.near_copy_embedder)

    def settings(self) -> dict[str, Any]:
        """The keys that change the numbers, recorded in ``config.json``."""
        return {
            "contributors": self.contributors,
            "opt_out": self.opt_out,
            "near_copy_quantile": self.near_copy_quantile,
            "near_copy_embedder": self.near_copy_embedder,
        }

    def ledger_target(self, run_dir: Path | None) -> str | Path | None:
        if self.ledger == LEDGER_OFF or (self.ledger == LEDGER_IN_RUN and run_dir is None):
            return None
        if self.ledger == LEDGER_IN_RUN:
            assert run_dir is not None
            return run_dir / "ledger.sqlite"
        return self.ledger


class RunAccounting:
    """The accounting of one run folder (see the module docstring)."""

    def __init__(
        self,
        opts: AccountingOptions,
        rights: TrainingRights,
        *,
        run_id: str,
        settings_sha256: str,
        near_copy: dict[str, Any] | None = None,
        train: Dataset | None = None,
        train_sha256: str | None = None,
        train_spec: str | None = None,
        cache_root: Path | None = None,
        space: nearcopy.CopySpace | None = None,
    ) -> None:
        """``train`` (or ``train_spec``, loaded when first needed) gives the training items
        that near-copy descriptors are computed from; ``cache_root`` is the shared embedding
        cache they are kept in; ``space`` is the near-copy space when the run already chose
        one (an appended batch)."""
        self.opts = opts
        self.rights = rights
        self.run_id = run_id
        self.settings_sha256 = settings_sha256
        self.near_copy = near_copy
        self.train = train
        self.train_sha256 = train_sha256
        self.train_spec = train_spec
        self.cache_root = cache_root
        self.space = space
        self._describe: nearcopy.RowDescriptors | None = None
        self.ledger_info: dict[str, Any] = {"target": None, "rows_added": 0}

    @classmethod
    def start(
        cls,
        opts: AccountingOptions,
        train: Dataset,
        settings: dict[str, Any],
        train_sha256: str,
        cache_root: Path | None = None,
    ) -> RunAccounting:
        from gmvaluator.rights.ledger.records import run_id_of, settings_hash

        rights = resolve_rights(train, contributors_file=opts.contributors, policy=opts.opt_out)
        return cls(
            opts,
            rights,
            run_id=run_id_of(settings, train_sha256),
            settings_sha256=settings_hash(settings),
            train=train,
            train_sha256=train_sha256,
            cache_root=cache_root,
        )

    # -- before valuing -------------------------------------------------------------------
    def index_view(self, train: Any) -> Any:
        """The embedded training set the index is built on: all rows, or the kept ones.

        A subset carries its own source hash, so an index of all rows is never reused for it.
        """
        keep = self.rights.keep
        if keep is None:
            return train
        ids = np.asarray(train.dataset.ids)[keep]
        vectors = np.ascontiguousarray(np.asarray(train.vectors)[keep])
        ds = Dataset(name=f"{train.dataset.name} (opted-out excluded)", kind="embedding",
                     ids=ids, items=vectors)  # fmt: skip
        digest = hash_strings([train.source_hash, "exclude-opted-out", hash_strings(ids)])
        return dataclasses.replace(train, dataset=ds, vectors=vectors, source_hash=digest)

    # -- after valuing --------------------------------------------------------------------
    def apply(
        self,
        result: ValuationResult,
        valuator: Valuator,
        generated: Dataset | None = None,
        run_dir: Path | None = None,
        generated_vectors: np.ndarray | None = None,
        progress: bool = False,
    ) -> ValuationResult:
        """Map the result onto every training row and flag near copies (``progress``: bars of
        the near-copy pass).

        In the run's own space the flags compare exact embedding distances with the threshold,
        also when d_ij came from another re-rank (``none``, ``sscd``): one scale for both.
        """
        space = self.copy_space(generated)
        run_distances = None
        method = (result.config.get("rerank") or {}).get("method", "exact")
        if space.mode == "run" and method != "exact" and generated_vectors is not None:
            run_distances = nearcopy.run_space_distances(
                valuator, generated_vectors, result.indices
            )
        result = self.rights.expand(result)
        seed = int(valuator.random_state)
        quantile = self.opts.near_copy_quantile
        if space.mode == "run":
            if self.near_copy is None:
                self.near_copy = nearcopy.calibrate(valuator, quantile, seed=seed,
                                                    progress=progress)  # fmt: skip
            distances = result.distances if run_distances is None else run_distances
        else:
            assert space.embedder is not None
            if generated is None:
                raise InputError(
                    f"near-copy flags in the {space.embedder} space need the generated items."
                )
            gen = nearcopy.descriptors(generated, space.embedder, None, "generated",
                                       progress=progress)  # fmt: skip
            keep = self.rights.keep
            if space.mode == "all":
                train = self._train_descriptors(space.embedder, run_dir, progress)
                if self.near_copy is None:
                    kept = train if keep is None else train[keep]
                    self.near_copy = nearcopy.calibrate_descriptors(
                        kept, quantile, seed=seed, space=space.embedder, progress=progress
                    )
                distances = nearcopy.pair_distances(gen, train, result.indices)
            else:
                describe = self._describer(space.embedder)
                describe.progress = progress
                if self.near_copy is None:
                    self.near_copy = nearcopy.calibrate_matched(
                        valuator, describe, keep, quantile, seed=seed, space=space.embedder,
                        progress=progress,
                    )  # fmt: skip
                distances = nearcopy.matched_distances(gen, describe, result.indices)
        self.near_copy = {**self.near_copy, **space.describe()}
        flags = nearcopy.flag(distances, self.near_copy.get("threshold"))
        return dataclasses.replace(result, near_copy=flags)

    def copy_space(self, generated: Dataset | None) -> nearcopy.CopySpace:
        """The near-copy space of this run, chosen on first use (``near_copy_embedder``)."""
        if self.space is None:
            sets = [ds for ds in (self.train, generated) if ds is not None]
            sides = [nearcopy.smallest_side(ds) for ds in sets]
            side = min((x for x in sides if x is not None), default=None)
            kinds = tuple(ds.kind for ds in sets)
            self.space = nearcopy.choose_space(self.opts.near_copy_embedder, kinds, side)
        return self.space

    def _describer(self, name: str) -> nearcopy.RowDescriptors:
        """Descriptors of training rows on demand, through the shared embedding cache."""
        if self._describe is None:
            from gmvaluator.embed import get_embedder
            from gmvaluator.embed.cache import open_cache

            embedder = get_embedder(name)
            cache = open_cache(self.cache_root, embedder)
            self._describe = nearcopy.RowDescriptors(self.training_items(), embedder, cache)
        return self._describe

    def training_items(self) -> Dataset:
        """The run's training source, loaded from ``train_spec`` when not given."""
        if self.train is None:
            if self.train_spec is None:
                raise InputError("near-copy flags on matched items need the training items.")
            self.train = load_training_items(self.train_spec, self.rights.ids)
        return self.train

    def index_items(self) -> Dataset:
        """The training items in the rows of the index: all, or the kept ones."""
        items = self.training_items()
        keep = self.rights.keep
        return items if keep is None else items.take(np.flatnonzero(keep) if
                                                     keep.dtype == bool else keep)  # fmt: skip

    def _train_descriptors(
        self, space: str, run_dir: Path | None, progress: bool = False
    ) -> np.ndarray:
        if self.train is not None:
            return nearcopy.descriptors(self.train, space, run_dir, "train", self.train_sha256,
                                        progress=progress)  # fmt: skip
        if run_dir is None:
            raise InputError(f"near-copy flags in the {space} space need the training items.")
        return nearcopy.cached_train_descriptors(run_dir)

    def columns(self, labels: np.ndarray | None) -> dict[str, np.ndarray | None]:
        """Columns of ``values.parquet`` beside each value."""
        return {"label": labels, **self.rights.columns()}

    def write(
        self,
        run_dir: Path,
        result: ValuationResult,
        generated: Dataset | None,
        valuator: Valuator,
        batch: ValuationResult | None = None,
    ) -> int:
        """``contributors.parquet`` of ``result`` and the ledger rows of ``batch``'s generated
        samples (default: ``result``'s; an appended batch adds only its own); returns how many
        rows the ledger added."""
        if self.rights.contributors is not None:
            frame = contributors_frame(result.values, result.n_matches, self.rights.contributors)
            write_parquet(frame, run_dir / "contributors.parquet")
        target = self.opts.ledger_target(run_dir)
        if target is None:
            return 0
        new = result if batch is None else batch
        return self.record_credits(target, new, generated, valuator, run_dir)

    def record_credits(
        self,
        target: str | Path,
        result: ValuationResult,
        generated: Dataset | None,
        valuator: Valuator,
        run_dir: Path | None,
    ) -> int:
        from gmvaluator.rights.ledger import RunStamp, describe_target, item_hashes, open_ledger

        stamp = RunStamp(
            self.run_id, self.settings_sha256, index_version(valuator), embedder_version(run_dir)
        )
        rows = stamp.credit_rows(
            result,
            generated_sha256=None if generated is None else item_hashes(generated),
            contributors=self.rights.contributors,
            licence=self.rights.licence,
        )
        with open_ledger(target) as ledger:
            added = ledger.append(rows)
        self.ledger_info = {
            "target": describe_target(target),
            "rows_added": self.ledger_info.get("rows_added", 0) + added,
        }
        return added

    def record(self, result: ValuationResult) -> dict[str, Any]:
        """What ``run.json`` says about contributors, opt-outs, near copies and the ledger."""
        flags = result.near_copy if result.near_copy is not None else np.zeros((0, 0), bool)
        flagged = result.generated_ids[flags.any(axis=1)] if flags.size else np.array([])
        return {
            "run_id": self.run_id,
            "settings_sha256": self.settings_sha256,
            "rights": self.rights.describe(),
            "near_copy": {
                **(self.near_copy or {}),
                "descriptors_embedded": 0 if self._describe is None else self._describe.embedded,
                "n_generated_flagged": len(flagged),
                "n_matches_flagged": int(flags.sum()),
                "flagged_generated_ids": [str(g) for g in flagged[:100]],
            },
            "ledger": self.ledger_info,
        }


def load_training_items(spec: str, ids: np.ndarray) -> Dataset:
    """A finished run's training source ``spec`` again, checked to hold the items ``ids``."""
    from gmvaluator.sources import load_source

    ds = load_source(spec)
    if not np.array_equal(np.asarray(ds.ids).astype(str), np.asarray(ids).astype(str)):
        raise InputError(
            f"the training source {spec} no longer holds the items the run was valued on (its "
            "ids differ), and copy-detection descriptors are computed from those items. "
            "Restore the source, or value all batches again with gmvaluator value."
        )
    return ds


def index_version(valuator: Valuator) -> str:
    d = valuator.describe()
    return f"{d['index']['factory']} sha256:{d['embeddings_sha256'][:16]}"


def embedder_version(run_dir: Path | None) -> str | None:
    """The training embedder's fingerprint (name, version, settings) as one JSON string."""
    fp = None if run_dir is None else embedder_of(run_dir, "train")
    return None if fp is None else json.dumps(fp, sort_keys=True)


def embedder_of(run_dir: Path, role: str) -> Any:
    """The embedder fingerprint recorded next to a run's embeddings of ``role``."""
    emb = run_dir / "embeddings"
    for path in (emb / role / "meta.json", emb / f"{role}.json"):
        if path.is_file():
            return read_json(path).get("embedder")
    return None


def rights_from_values(values: pd.DataFrame, policy: str) -> TrainingRights:
    """The rights of a finished run, read back from its ``values.parquet``."""

    def col(name: str) -> np.ndarray | None:
        return values[name].to_numpy() if name in values else None

    opt_out = col("opt_out")
    return TrainingRights(
        ids=values["train_id"].to_numpy().astype(str),
        contributors=None if col("contributor") is None else col("contributor").astype(str),  # type: ignore[union-attr]
        licence=None if col("licence") is None else col("licence").astype(str),  # type: ignore[union-attr]
        opt_out=None if opt_out is None else opt_out.astype(bool),
        policy=policy,
    )
