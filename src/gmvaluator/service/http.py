"""The attribution service over HTTP (FastAPI), answering with an ``Attributor``:

    GET  /health              the run it serves
    POST /attribute/image     multipart upload, field ``file`` (and optional ``id``, ``quality``,
                              ``record``)
    POST /attribute/text      JSON {"text": ..., "id"?, "quality"?, "record"?}
    POST /attribute/embedding JSON {"embedding": [...], "id"?, "quality"?, "record"?}

Bad input gets a 4xx with one sentence in ``detail``: 400 unreadable content, 401 a missing or
wrong token, 409 an id recorded already for other content, 413 a body over the size limit, 415
the wrong content type, 422 well-formed but invalid, out of range or of the wrong kind.

With a ``token``, every ``/attribute`` request must send ``Authorization: Bearer <token>``
(compared in constant time); without one, lookups are open and ``record=true`` is refused, so
that nobody can write the ledger without the token. ``/docs`` is a page of its own, made from
the OpenAPI schema, that loads nothing from the network.
"""

from __future__ import annotations

import contextlib
import hmac
import html
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from gmvaluator.errors import InputError
from gmvaluator.rights.accounting import LEDGER_IN_RUN
from gmvaluator.service import MAX_BYTES
from gmvaluator.service.attributor import Attributor, ConflictError, KindError, QualityError


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
    method: str = Field(description="How these credits were made: training-free.")
    run_method: str = Field(
        description="How the run's own credits were made: training-free or model-aware."
    )
    k: int
    quality: float
    share: float = Field(description="Attributable share a_j: the part of q_j handed out.")
    unattributed: float = Field(description="Credit not handed out: q_j (1 - a_j).")
    near_copy: bool
    near_copy_threshold: float | None
    matches: list[Match]
    contributors: list[ContributorCredit]
    recorded: int = Field(description="New ledger rows written for this request.")


class Problem(BaseModel):
    detail: Any = Field(description="What is wrong, in one sentence (422: a list of fields).")


#: The error answers of every /attribute route, as the OpenAPI schema lists them.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in {
        400: "Unreadable content, or a request the service cannot serve.",
        401: "A missing or wrong token, or record=true on a service started without one.",
        409: "The id is recorded already for other content, or record=true on a model-aware run.",
        413: "The body is larger than the service's limit.",
        415: "The wrong content type.",
        422: "Invalid or out-of-range fields, or a sample of another kind than the run's.",
    }.items()
}


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
    run_dir: str | Path,
    *,
    max_bytes: int = MAX_BYTES,
    ledger: str | None = LEDGER_IN_RUN,
    token: str | None = None,
    max_quality: float | None = None,
) -> FastAPI:
    """The app serving one run folder (see the module docstring)."""
    attributor = Attributor.from_run(run_dir, ledger=ledger, max_quality=max_quality)
    return app_for(attributor, max_bytes=max_bytes, token=token)


def app_for(
    attributor: Attributor, *, max_bytes: int = MAX_BYTES, token: str | None = None
) -> FastAPI:
    """The app answering with ``attributor``, which it closes when it shuts down; ``token``,
    when given, is asked of every /attribute request."""
    from gmvaluator import __version__

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        attributor.close()

    app = FastAPI(
        lifespan=lifespan,
        title="gmvaluator attribution service",
        version=__version__,
        description=f"Contributors and credits of generated samples (run {attributor.run_id}).",
        docs_url=None,
        redoc_url=None,
    )
    app.state.attributor = attributor
    app.state.token = token
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
    app.add_exception_handler(InputError, _input_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    _add_routes(app, attributor)
    return app


async def _input_error(request: Request, exc: InputError) -> JSONResponse:
    status = 400
    if isinstance(exc, KindError | QualityError):
        status = 422
    elif isinstance(exc, ConflictError):
        status = 409
    return JSONResponse({"detail": str(exc)}, status_code=status)


def _authorise(request: Request, record: bool) -> None:
    """401 unless the request sends the service's token; ``record`` needs one in any case."""
    token = request.app.state.token
    if token is None:
        if record:
            raise HTTPException(
                401,
                "record=true needs the service token, and this service was started without "
                "one. Start it with --token (or GMVALUATOR_SERVICE_TOKEN) to record credits.",
            )
        return
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    ok = scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape")
    )
    if not ok:
        raise HTTPException(
            401,
            "send the service token as 'Authorization: Bearer <token>'."
            if not given
            else "the token is wrong.",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"detail": "the body is not valid JSON."}, status_code=400)
    return JSONResponse({"detail": _jsonable(errors)}, status_code=422)


def _add_routes(app: FastAPI, attributor: Attributor) -> None:
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
            "run_method": attributor.run_method,
        }

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.openapi()))

    routes = {"response_model": Attribution, "responses": ERRORS}

    @app.post("/attribute/image", dependencies=[_MULTIPART], **routes)  # type: ignore[arg-type]
    def attribute_image(
        request: Request,
        file: UploadFile = File(description="The generated image (png, jpeg, ...)."),  # noqa: B008
        id: str | None = Form(default=None, max_length=1000),
        quality: float = Form(default=1.0, ge=0),
        record: bool = Form(default=False),
    ) -> dict[str, Any]:
        _authorise(request, record)
        data = file.file.read()
        if not data:
            raise HTTPException(400, "the uploaded file is empty.")
        return attributor.attribute_image(data, generated_id=id, quality=quality, record=record)

    @app.post("/attribute/text", dependencies=[_JSON], **routes)  # type: ignore[arg-type]
    def attribute_text(request: Request, sample: TextSample) -> dict[str, Any]:
        _authorise(request, sample.record)
        return attributor.attribute_text(
            sample.text, generated_id=sample.id, quality=sample.quality, record=sample.record
        )

    @app.post("/attribute/embedding", dependencies=[_JSON], **routes)  # type: ignore[arg-type]
    def attribute_embedding(request: Request, sample: EmbeddingSample) -> dict[str, Any]:
        _authorise(request, sample.record)
        return attributor.attribute_embedding(
            sample.embedding, generated_id=sample.id, quality=sample.quality, record=sample.record
        )


def docs_page(schema: dict[str, Any]) -> str:
    """The API as one HTML page with no script and no link to fetch: every path, its fields
    and its answers, from the OpenAPI ``schema``."""
    e = html.escape
    info = schema.get("info", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(info.get('title', 'API'))}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "code{background:#eee}td{padding:0 1em 0 0;vertical-align:top}</style></head><body>",
        f"<h1>{e(info.get('title', 'API'))} {e(str(info.get('version', '')))}</h1>",
        f"<p>{e(info.get('description', ''))}</p>",
        "<p>The machine-readable schema: <a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            parts.append(f"<h2><code>{e(method.upper())} {e(path)}</code></h2>")
            parts.append(f"<p>{e(op.get('summary', ''))}</p>")
            fields = _fields(schema, op)
            if fields:
                parts.append("<table><tr><th>field</th><th>type</th><th>about</th></tr>")
                parts += [
                    f"<tr><td><code>{e(n)}</code></td><td>{e(t)}</td><td>{e(d)}</td></tr>"
                    for n, t, d in fields
                ]
                parts.append("</table>")
            parts.append("<p>Answers:</p><ul>")
            for code, answer in op.get("responses", {}).items():
                parts.append(f"<li><b>{e(str(code))}</b> {e(answer.get('description', ''))}</li>")
            parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _fields(schema: dict[str, Any], op: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, type, description) of the body fields of operation ``op``."""
    content = op.get("requestBody", {}).get("content", {})
    out = []
    for media in content.values():
        ref = media.get("schema", {}).get("$ref", "")
        body = schema.get("components", {}).get("schemas", {}).get(ref.split("/")[-1], {})
        for name, prop in body.get("properties", {}).items():
            kind = prop.get("type") or " or ".join(
                str(a.get("type", "")) for a in prop.get("anyOf", [])
            )
            out.append((name, str(kind), str(prop.get("description", ""))))
    return out


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
