"""The attributor: one generated sample in, its contributors and credits out, in process.

``Attributor`` loads a finished run once (the fitted valuator, the embedder that embedded the
training set, contributors, licences, the opt-out policy, the near-copy space and threshold, and
the re-rank) and answers lookups, finding each sample's matches as the run did: a run re-ranked
by SSCD or a perceptual distance reads its candidates from the training source again
(descriptors are kept between requests). Credits come from the run's credit rule and recorded
credits are the run's own ledger rows (``gmvaluator.rights.ledger.credit_rows``).
``gmvaluator.service.http`` puts it behind an HTTP API.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gmvaluator.core.credit import CreditRule
from gmvaluator.core.result import ValuationResult
from gmvaluator.core.valuator import Valuator
from gmvaluator.errors import InputError
from gmvaluator.rights import nearcopy
from gmvaluator.rights.accounting import (
    LEDGER_IN_RUN,
    LEDGER_OFF,
    embedder_of,
    embedder_version,
    index_version,
    load_training_items,
    rights_from_values,
)
from gmvaluator.rights.contributors import TrainingRights
from gmvaluator.rights.ledger import RunStamp
from gmvaluator.run.folder import RunFolder


class KindError(InputError):
    """The sample is of another kind (image, text, embedding) than the run's training set."""


class ConflictError(InputError):
    """A generated id already recorded in the ledger for other content, or credits the run's
    ledger must not hold (training-free credits of a model-aware run)."""


#: What the service's credits are: the training-free rule, whatever method the run used.
METHOD = "training-free"


#: Highest quality a request may send, unless the run's own scores go higher.
MAX_QUALITY = 1.0


class Attributor:
    """A finished run, loaded once, answering "which training items does this sample credit"."""

    def __init__(
        self,
        valuator: Valuator,
        rights: TrainingRights,
        embedder: Any,
        *,
        threshold: float | None = None,
        run_id: str = "run-unknown",
        settings_sha256: str = "",
        embedder_version: str | None = None,
        ledger_target: str | Path | None = None,
        copy_space: tuple[Any, Any] | None = None,
        rerank: str = "exact",
        n_candidates: int | None = None,
        train_items: Any = None,
        max_quality: float = MAX_QUALITY,
        run_method: str = METHOD,
    ) -> None:
        """``rerank`` and ``n_candidates`` are the run's; the re-ranks that compare images
        (``sscd``, ``lpips``, ...) read the candidates from ``train_items``, the training
        source. A request's quality must lie in [0, ``max_quality``]. ``run_method`` is how the
        run's own credits were made: the service answers training-free credits, and a
        model-aware run's ledger does not take them."""
        self.max_quality = float(max_quality)
        self.run_method = run_method
        self.valuator = valuator
        self.credit_rule: CreditRule = valuator.credit_rule_
        # (embedder, descriptors of training rows: rows -> (len, dim)) when near copies are
        # judged in a copy-detection space
        self.copy_space = copy_space
        self.rights = rights
        keep = rights.keep
        # rows of the fitted index are the kept training rows, in order
        self.rows = np.arange(len(rights.ids)) if keep is None else keep
        self.embedder = embedder
        self.kind: str = embedder.kind
        self.threshold = threshold
        self.run_id = run_id
        self.index_version = index_version(valuator)
        self.stamp = RunStamp(run_id, settings_sha256, self.index_version, embedder_version)
        self.ledger_target = ledger_target
        self.rerank = rerank
        self.n_candidates = n_candidates
        self.train_items = train_items
        self._describe: Any = None
        if copy_space is not None and rerank == getattr(copy_space[0], "name", None):
            self._describe = copy_space[1]  # the same descriptors serve both
        self._ledger: Any = None
        self._ledger_lock = threading.Lock()

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        ledger: str | None = LEDGER_IN_RUN,
        max_quality: float | None = None,
    ) -> Attributor:
        """Load a run folder written by ``gmvaluator value``; ``ledger`` is where recorded
        credits go (``run``: ``RUN/ledger.sqlite``; ``none``: nowhere). Requests may send a
        quality up to ``max_quality``; by default the run's own range: up to 1, or the highest
        quality of its generated samples when that is higher."""
        folder = RunFolder(run_dir).require_finished("serve")
        run = folder.path
        settings = folder.read_settings()
        record = folder.read_record()
        values = pd.read_parquet(folder.values)
        rights = rights_from_values(values, settings.get("opt_out", "flag"))
        copy_space = _copy_space(run, settings, record, rights.ids)
        rerank = settings.get("rerank", "exact")
        train_items = None
        if rerank not in ("exact", "none"):
            train_items = load_training_items(settings["train"], rights.ids)
        return cls(
            Valuator.load(folder.index, mmap=False),
            rights,
            load_embedder(embedder_of(run, "train"), settings.get("embedder")),
            threshold=(record.get("near_copy") or {}).get("threshold"),
            run_id=record.get("run_id", "run-unknown"),
            settings_sha256=record.get("settings_sha256", ""),
            embedder_version=embedder_version(run),
            ledger_target=_ledger_target(run, ledger),
            copy_space=copy_space,
            rerank=rerank,
            n_candidates=settings.get("n_candidates"),
            train_items=train_items,
            max_quality=run_max_quality(folder) if max_quality is None else max_quality,
            run_method="model-aware" if settings.get("model") else METHOD,
        )

    # -- lookups ------------------------------------------------------------------------------
    def attribute_image(self, data: bytes, **kw: Any) -> dict[str, Any]:
        from gmvaluator.sources import open_image

        self._expect("image")
        image = open_image(io.BytesIO(data), kw.get("generated_id") or "upload")
        vec = np.asarray(self.embedder.embed_batch([image]), dtype=np.float32)
        return self.attribute_vector(vec, content=data, descriptor=self._copy_descriptor(image),
                                     item=image, **kw)  # fmt: skip

    def attribute_text(self, text: str, **kw: Any) -> dict[str, Any]:
        self._expect("text")
        if not text.strip():
            raise InputError("text is empty. Send the generated text to attribute.")
        vec = np.asarray(self.embedder.embed_batch([text]), dtype=np.float32)
        content = text.encode("utf-8", "surrogatepass")
        return self.attribute_vector(vec, content=content, descriptor=self._copy_descriptor(text),
                                     item=text, **kw)  # fmt: skip

    def attribute_embedding(self, embedding: list[float], **kw: Any) -> dict[str, Any]:
        self._expect("embedding")
        vec = np.asarray(embedding, dtype=np.float32).reshape(1, -1)
        return self.attribute_vector(vec, content=vec.tobytes(), **kw)

    def attribute_vector(
        self,
        vec: np.ndarray,
        *,
        content: bytes,
        generated_id: str | None = None,
        quality: float = 1.0,
        record: bool = False,
        descriptor: np.ndarray | None = None,
        item: Any = None,
    ) -> dict[str, Any]:
        """Top-k matches of one embedded sample, their credits and their contributors.

        ``descriptor`` is the sample in the run's near-copy space, when it has one of its own;
        ``item`` the sample itself, which the run's re-rank may compare with the candidates.
        """
        if not (np.isfinite(quality) and 0 <= quality <= self.max_quality):
            raise QualityError(
                f"quality is {quality}; it must be a finite number from 0 to "
                f"{self.max_quality:g} (the range of this run's quality scores)."
            )
        if not np.isfinite(vec).all():
            raise InputError("the sample embeds to non-finite values; it cannot be matched.")
        if record and self.run_method != METHOD:
            raise ConflictError(
                f"this run's credits are {self.run_method} and the service's are {METHOD}, so "
                "record=true would mix two methods in one ledger; value the new samples with "
                "`gmvaluator value RUN --append --generated SOURCE --model FILE.py` instead."
            )
        sha = hashlib.sha256(content).hexdigest()
        gid = generated_id or f"sha256:{sha[:16]}"
        dist, rows = self._matches(vec, item, gid)
        full = self.rows[rows[0]]
        share = self._share(vec, dist, rows)
        lookup = self._lookup(gid, dist, full, quality, descriptor, share)
        matches = self._match_list(lookup, full)
        out: dict[str, Any] = {
            "generated_id": gid,
            "generated_sha256": sha,
            "run_id": self.run_id,
            "method": METHOD,
            "run_method": self.run_method,
            "k": len(matches),
            "quality": float(quality),
            "share": float(lookup.share[0]) if lookup.share is not None else 1.0,
            "unattributed": float(lookup.unattributed[0]),
            "near_copy": any(m["near_copy"] for m in matches),
            "near_copy_threshold": self.threshold,
            "matches": matches,
            "contributors": _by_contributor(matches),
            "recorded": 0,
        }
        if record:
            out["recorded"] = self._record(lookup, full, sha, gid)
        return out

    def _lookup(
        self,
        gid: str,
        dist: np.ndarray,
        full: np.ndarray,
        quality: float,
        descriptor: np.ndarray | None,
        share: np.ndarray | None,
    ) -> ValuationResult:
        """One sample's matches as a result over only the k training items it matched, so that
        a lookup never copies a column as long as the training set."""
        k = len(full)
        credit = self.credit_rule.credits(dist, np.array([quality]), share)
        copy_dist = dist
        if self.copy_space is not None and descriptor is not None:
            copy_dist = nearcopy.matched_distances(descriptor, self.copy_space[1], full[None])
        return ValuationResult(
            train_ids=self.rights.ids[full],
            generated_ids=np.array([gid]),
            values=credit[0],
            n_matches=np.ones(k, dtype=np.int64),
            distances=dist,
            indices=np.arange(k)[None],
            credits=credit,
            quality=np.array([float(quality)]),
            near_copy=nearcopy.flag(copy_dist, self.threshold),
            share=share,
        )

    def _share(self, vec: np.ndarray, dist: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
        """a_j as the run measured it: from the sample's matches in the run's own space."""
        if self.rerank != "exact":
            dist, rows = self.valuator.kneighbors(vec)
        return self.valuator.attributable_share(dist, rows)

    def _match_list(self, lookup: ValuationResult, full: np.ndarray) -> list[dict[str, Any]]:
        """The lookup's matches as the service answers them, best first."""
        r = self.rights
        near = lookup.near_copy
        assert near is not None
        return [
            {
                "rank": rank + 1,
                "train_id": str(lookup.train_ids[rank]),
                "contributor": None if r.contributors is None else str(r.contributors[i]),
                "licence": None if r.licence is None else str(r.licence[i]),
                "distance": float(lookup.distances[0, rank]),
                "credit": float(lookup.credits[0, rank]),
                "near_copy": bool(near[0, rank]),
            }
            for rank, i in enumerate(full)
        ]

    def _copy_descriptor(self, item: Any) -> np.ndarray | None:
        if self.copy_space is None:
            return None
        return np.asarray(self.copy_space[0].embed_batch([item]), dtype=np.float32)

    def _matches(self, vec: np.ndarray, item: Any, gid: str) -> tuple[np.ndarray, np.ndarray]:
        """The sample's k matches as the run found them: by its re-rank."""
        if self.rerank == "exact":
            return self.valuator.kneighbors(vec)
        from gmvaluator.core.rerank import rerank_matches
        from gmvaluator.engines import Embedded
        from gmvaluator.sources import Dataset

        if self.rerank != "none" and item is None:
            raise KindError(
                f"this run re-ranks with {self.rerank}, which compares the items themselves; "
                f"POST the {self.kind} to /attribute/{self.kind}."
            )
        ds = Dataset(name="request", kind=self.embedder.kind, ids=np.array([gid]), items=[item])
        sample = Embedded(ds, vec, "", 0.0, False)
        train = None
        if self.train_items is not None:
            train = Embedded(self.train_items, np.empty((0, 0), np.float32), "", 0.0, True)
        if self.rerank in ("sscd", "sscd-distilled") and self._describe is None:
            from gmvaluator.embed import get_embedder

            self._describe = nearcopy.RowDescriptors(self.train_items, get_embedder(self.rerank))
        dist, rows, _ = rerank_matches(
            self.valuator, train, sample, self.rerank, n_candidates=self.n_candidates,
            describe=self._describe,
        )  # fmt: skip
        return dist, rows

    # -- helpers ------------------------------------------------------------------------------
    def _expect(self, kind: str) -> None:
        if kind != self.kind:
            raise KindError(
                f"this run values {self.kind} data with embedder {self.embedder.name!r}; a "
                f"{kind} sample cannot be matched. POST to /attribute/{self.kind}."
            )

    def _record(self, lookup: ValuationResult, full: np.ndarray, sha: str, gid: str) -> int:
        """Write the lookup's credits to the ledger as the run's own rows; how many were new.
        An id the run recorded already for other content is a ``ConflictError``."""
        if self.ledger_target is None:
            raise InputError("this service records no credits (started with --ledger none).")
        from gmvaluator.rights.ledger import open_ledger

        r = self.rights
        rows = self.stamp.credit_rows(
            lookup,
            generated_sha256=np.array([sha]),
            contributors=None if r.contributors is None else r.contributors[full],
            licence=None if r.licence is None else r.licence[full],
        )
        with self._ledger_lock:
            if self._ledger is None:
                self._ledger = open_ledger(self.ledger_target)
            before = self._ledger.explain(gid, run_id=self.run_id)
            if len(before):
                if set(before["generated_sha256"]) != {sha}:
                    raise ConflictError(
                        f"generated id {gid!r} is recorded already for other content; its "
                        "credits stand. Send this sample under a new id."
                    )
                return 0
            return int(self._ledger.append(rows))

    def close(self) -> None:
        with self._ledger_lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None


class QualityError(InputError):
    """A request's quality outside the range the service accepts."""


def run_max_quality(folder: RunFolder) -> float:
    """The highest quality a request may send: 1, or the run's highest when that is higher."""
    import pyarrow.parquet as pq

    highest = MAX_QUALITY
    if folder.attributions.is_file():
        q = pq.read_table(folder.attributions, columns=["quality"]).column(0).to_numpy()
        q = q[np.isfinite(q)]
        if len(q):
            highest = max(highest, float(q.max()))
    return highest


def load_embedder(fingerprint: dict[str, Any] | None, name: str | None) -> Any:
    """The embedder a run's training set was embedded with, rebuilt from its fingerprint."""
    from gmvaluator.embed import get_embedder

    if fingerprint is None:
        if name is None:
            raise InputError("the run records no embedder; re-run `gmvaluator value` on it.")
        return get_embedder(name)
    probe = get_embedder(fingerprint["name"])
    accepted = inspect.signature(type(probe)).parameters
    options = {k: v for k, v in fingerprint.get("settings", {}).items() if k in accepted}
    return get_embedder(fingerprint["name"], **options)


def _copy_space(
    run: Path, settings: dict[str, Any], record: dict[str, Any], ids: np.ndarray
) -> tuple[Any, Any] | None:
    """The copy-detection embedder of a run and a lookup of its training rows' descriptors
    (cached ones, or computed from the training source on demand); None in the run's space."""
    space = nearcopy.recorded_space(
        record.get("near_copy") or {}, settings.get("near_copy_embedder", nearcopy.RUN_SPACE)
    )
    if space.mode == "run" or space.embedder is None:
        return None
    from gmvaluator.embed import get_embedder
    from gmvaluator.embed.cache import open_cache

    embedder = get_embedder(space.embedder)
    if space.mode == "all":
        train = nearcopy.cached_train_descriptors(run)
        return embedder, lambda rows: train[rows]
    items = load_training_items(settings["train"], ids)
    cache = open_cache(nearcopy.cache_root_of(record), embedder)
    return embedder, nearcopy.RowDescriptors(items, embedder, cache)


def _ledger_target(run: Path, ledger: str | None) -> str | Path | None:
    if ledger is None or ledger == LEDGER_OFF:
        return None
    return run / "ledger.sqlite" if ledger == LEDGER_IN_RUN else ledger


def _by_contributor(matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    totals: dict[str, float] = {}
    for m in matches:
        key = m["contributor"] if m["contributor"] is not None else m["train_id"]
        totals[key] = totals.get(key, 0.0) + m["credit"]
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"contributor": c, "credit": v} for c, v in ranked]
