"""The attribution service: one generated sample in, its contributors and credits out.

``Attributor`` loads a finished run once (the fitted valuator, the embedder that embedded the
training set, contributors, licences, the opt-out policy, the near-copy space and threshold, and
the re-rank) and answers lookups in process, finding each sample's matches as the run did: a
run re-ranked by SSCD or a perceptual distance reads its candidates from the training source
again (descriptors are kept between requests). ``create_app`` puts it behind an HTTP API (FastAPI):

    GET  /health              the run it serves
    POST /attribute/image     multipart upload, field ``file`` (and optional ``id``, ``quality``,
                              ``record``)
    POST /attribute/text      JSON {"text": ..., "id"?, "quality"?, "record"?}
    POST /attribute/embedding JSON {"embedding": [...], "id"?, "quality"?, "record"?}

Bad input gets a 4xx with one sentence in ``detail``: 400 unreadable content, 413 a body over
the size limit, 415 the wrong content type, 422 well-formed but invalid or of the wrong kind.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gmvaluator._io import read_json
from gmvaluator.core.valuator import Valuator, softmax_credit
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

#: Default request body limit (bytes).
MAX_BYTES = 8 * 1024 * 1024


class KindError(InputError):
    """The sample is of another kind (image, text, embedding) than the run's training set."""


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
    ) -> None:
        """``rerank`` and ``n_candidates`` are the run's; the re-ranks that compare images
        (``sscd``, ``lpips``, ...) read the candidates from ``train_items``, the training
        source."""
        self.valuator = valuator
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
        self.settings_sha256 = settings_sha256
        self.index_version = index_version(valuator)
        self.embedder_version = embedder_version
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
    def from_run(cls, run_dir: str | Path, ledger: str | None = LEDGER_IN_RUN) -> Attributor:
        """Load a run folder written by ``gmvaluator value``; ``ledger`` is where recorded
        credits go (``run``: ``RUN/ledger.sqlite``; ``none``: nowhere)."""
        run = Path(run_dir)
        for name in ("config.json", "run.json", "values.parquet", "index/index.json"):
            if not (run / name).is_file():
                raise InputError(
                    f"{run} is not a finished valuation run (no {name}). Serve a folder "
                    "written by `gmvaluator value`."
                )
        settings = read_json(run / "config.json")
        record = read_json(run / "run.json")
        values = pd.read_parquet(run / "values.parquet")
        rights = rights_from_values(values, settings.get("opt_out", "flag"))
        copy_space = _copy_space(run, settings, record, rights.ids)
        rerank = settings.get("rerank", "exact")
        train_items = None
        if rerank not in ("exact", "none"):
            train_items = load_training_items(settings["train"], rights.ids)
        return cls(
            Valuator.load(run / "index", mmap=False),
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
        if not (np.isfinite(quality) and quality >= 0):
            raise InputError(f"quality is {quality}; it must be a finite number >= 0.")
        if not np.isfinite(vec).all():
            raise InputError("the sample embeds to non-finite values; it cannot be matched.")
        sha = hashlib.sha256(content).hexdigest()
        gid = generated_id or f"sha256:{sha[:16]}"
        dist, rows = self._matches(vec, item, gid)
        credit = softmax_credit(dist, self.valuator.temperature, np.array([quality]))[0]
        full = self.rows[rows[0]]
        copy_dist = dist[0]
        if self.copy_space is not None and descriptor is not None:
            copy_dist = nearcopy.matched_distances(descriptor, self.copy_space[1], full[None])[0]
        near = nearcopy.flag(copy_dist, self.threshold)
        r = self.rights
        matches = [
            {
                "rank": rank + 1,
                "train_id": str(r.ids[i]),
                "contributor": None if r.contributors is None else str(r.contributors[i]),
                "licence": None if r.licence is None else str(r.licence[i]),
                "distance": float(dist[0, rank]),
                "credit": float(credit[rank]),
                "near_copy": bool(near[rank]),
            }
            for rank, i in enumerate(full)
        ]
        out: dict[str, Any] = {
            "generated_id": gid,
            "generated_sha256": sha,
            "run_id": self.run_id,
            "k": len(matches),
            "quality": float(quality),
            "near_copy": bool(near.any()),
            "near_copy_threshold": self.threshold,
            "matches": matches,
            "contributors": _by_contributor(matches),
            "recorded": 0,
        }
        if record:
            out["recorded"] = self._record(out)
        return out

    def _copy_descriptor(self, item: Any) -> np.ndarray | None:
        if self.copy_space is None:
            return None
        return np.asarray(self.copy_space[0].embed_batch([item]), dtype=np.float32)

    def _matches(self, vec: np.ndarray, item: Any, gid: str) -> tuple[np.ndarray, np.ndarray]:
        """The sample's k matches as the run found them: by its re-rank."""
        if self.rerank == "exact":
            return self.valuator.kneighbors(vec)
        from gmvaluator.core.rerank import rerank_matches
        from gmvaluator.run.pipeline import Embedded
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
            from gmvaluator.rights.nearcopy import RowDescriptors

            self._describe = RowDescriptors(self.train_items, get_embedder(self.rerank))
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

    def _record(self, out: dict[str, Any]) -> int:
        if self.ledger_target is None:
            raise InputError("this service records no credits (started with --ledger none).")
        from gmvaluator.rights.ledger import COLUMNS, open_ledger

        now = datetime.now(UTC).isoformat(timespec="seconds")
        rows = pd.DataFrame(
            [
                {
                    **{c: m.get(c) for c in COLUMNS if c in m},
                    "run_id": self.run_id,
                    "generated_id": out["generated_id"],
                    "generated_sha256": out["generated_sha256"],
                    "quality": out["quality"],
                    "near_copy": int(m["near_copy"]),
                    "index_version": self.index_version,
                    "embedder": self.embedder_version,
                    "settings_sha256": self.settings_sha256,
                    "recorded_at": now,
                }
                for m in out["matches"]
            ]
        )
        with self._ledger_lock:
            if self._ledger is None:
                self._ledger = open_ledger(self.ledger_target)
            return int(self._ledger.append(rows))

    def close(self) -> None:
        with self._ledger_lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None


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


# -- HTTP -------------------------------------------------------------------------------------
class Match(BaseModel):
    rank: int
    train_id: str
    contributor: str | None
    licence: str | None
    distance: float
    credit: float
    near_copy: bool


class ContributorCredit(BaseModel):
    contributor: str
    credit: float


class Attribution(BaseModel):
    generated_id: str
    generated_sha256: str
    run_id: str
    k: int
    quality: float
    near_copy: bool
    near_copy_threshold: float | None
    matches: list[Match]
    contributors: list[ContributorCredit]
    recorded: int = Field(description="New ledger rows written for this request.")


class TextSample(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)
    id: str | None = Field(default=None, max_length=1000)
    quality: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    record: bool = False


class EmbeddingSample(BaseModel):
    embedding: list[float] = Field(min_length=1)
    id: str | None = Field(default=None, max_length=1000)
    quality: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    record: bool = False


def create_app(
    run_dir: str | Path, *, max_bytes: int = MAX_BYTES, ledger: str | None = LEDGER_IN_RUN
) -> Any:
    """The FastAPI app serving one run (see the module docstring)."""
    from gmvaluator import __version__

    attributor = Attributor.from_run(run_dir, ledger=ledger)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        attributor.close()

    app = FastAPI(
        lifespan=lifespan,
        title="gmvaluator attribution service",
        version=__version__,
        description=f"Contributors and credits of generated samples (run {attributor.run_id}).",
    )
    app.state.attributor = attributor
    app.add_middleware(BodyLimit, max_bytes=max_bytes)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        status = 422 if isinstance(exc, KindError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"detail": "the body is not valid JSON."}, status_code=400)
        return JSONResponse({"detail": _jsonable(errors)}, status_code=422)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "run_id": attributor.run_id,
            "kind": attributor.kind,
            "embedder": attributor.embedder.name,
            "n_train": len(attributor.rights.ids),
            "k": attributor.valuator.k,
            "recording": attributor.ledger_target is not None,
        }

    @app.post("/attribute/image", response_model=Attribution, dependencies=[_MULTIPART])
    def attribute_image(
        file: UploadFile = File(description="The generated image (png, jpeg, ...)."),  # noqa: B008
        id: str | None = Form(default=None, max_length=1000),
        quality: float = Form(default=1.0, ge=0),
        record: bool = Form(default=False),
    ) -> dict[str, Any]:
        data = file.file.read()
        if not data:
            raise HTTPException(400, "the uploaded file is empty.")
        return attributor.attribute_image(data, generated_id=id, quality=quality, record=record)

    @app.post("/attribute/text", response_model=Attribution, dependencies=[_JSON])
    def attribute_text(sample: TextSample) -> dict[str, Any]:
        return attributor.attribute_text(
            sample.text, generated_id=sample.id, quality=sample.quality, record=sample.record
        )

    @app.post("/attribute/embedding", response_model=Attribution, dependencies=[_JSON])
    def attribute_embedding(sample: EmbeddingSample) -> dict[str, Any]:
        return attributor.attribute_embedding(
            sample.embedding, generated_id=sample.id, quality=sample.quality, record=sample.record
        )

    return app


def _content_type(*types: str) -> Any:
    """A dependency that answers 415 unless the request has one of ``types``; it runs before
    the body is validated, so a wrong type is never reported as a missing field."""

    def check(request: Request) -> None:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in types:
            raise HTTPException(
                415, f"send {' or '.join(types)}, not {ctype or 'no content type'}."
            )

    return Depends(check)


_MULTIPART = _content_type("multipart/form-data")
_JSON = _content_type("application/json")


def _jsonable(errors: Any) -> Any:
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]


def _too_large() -> Exception:
    from starlette.exceptions import HTTPException

    return HTTPException(413, "the request body is larger than the service's limit.")


class BodyLimit:
    """ASGI middleware: answer 413 to a request body over ``max_bytes``, declared or streamed."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # an HTTPException, so that the framework answers 413 itself
                    raise _too_large()
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception as exc:
            if started or getattr(exc, "status_code", None) != 413:
                raise
            await self._reject(send)

    async def _reject(self, send: Any) -> None:
        import json

        body = json.dumps(
            {"detail": f"the request body is larger than the limit of {self.max_bytes} bytes."}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})
