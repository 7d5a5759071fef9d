"""The run folder: the name of everything a run writes, and whether a folder is a (finished) run.

    RUN/config.json                 resolved settings (what decides the numbers), written first
    RUN/embeddings/<role>/          embedding shards of each source (``gmvaluator.embed.shards``)
    RUN/index/                      the fitted Valuator (index.faiss, embeddings.npy, index.json)
    RUN/values.parquet              one row per training item
    RUN/attributions.parquet        one row per generated sample and match
    RUN/result.json                 the rest of the ``ValuationResult`` (k, recall, config)
    RUN/generated.parquet           one row per generated sample: quality, attributable share,
                                    credit handed out and left unattributed (calibrated credit)
    RUN/generated_neighbours.npz    each training item's nearest generated samples, which the
                                    density sums over and an append merges (calibrated credit)
    RUN/contributors.parquet        value per contributor, when contributors are known
    RUN/skipped.csv                 items dropped under ``--on-error skip``, with the reason
    RUN/ledger.sqlite               the run's ledger of credits (``--ledger run``)
    RUN/run.json                    versions, input hashes, counts, timings, recall; written last
    RUN/eval/<criterion>.json       results of ``gmvaluator evaluate``
    RUN/demo.json                   the summary of ``gmvaluator demo``
    RUN/report/index.html           the report of ``gmvaluator report``
    RUN/.gmvaluator-run             the marker of a run folder, written before anything else
    RUN/.gmvaluator-lock            locked (``flock``) by the one process writing the run

The tool writes only into a new folder, an empty one or a run folder (``RunFolder.writing``),
never into or over an input source; it removes only files it wrote: the names above and its
own temporary files (``gmvaluator.files.is_own_temp``).

Lower layers write some of these under the same names (``ValuationResult.save`` its five
files, ``gmvaluator.rights`` the ledger and contributors, engines the embeddings).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gmvaluator.config import diff_settings
from gmvaluator.engines.base import EMBEDDINGS
from gmvaluator.errors import InputError, ResumeError
from gmvaluator.files import is_own_temp, read_json, write_json

log = logging.getLogger(__name__)

CONFIG = "config.json"
RECORD = "run.json"
VALUES = "values.parquet"
ATTRIBUTIONS = "attributions.parquet"
RESULT = "result.json"
GENERATED = "generated.parquet"
NEIGHBOURS = "generated_neighbours.npz"
CONTRIBUTORS = "contributors.parquet"
SKIPPED = "skipped.csv"
LEDGER = "ledger.sqlite"
INDEX = "index"
INDEX_META = f"{INDEX}/index.json"
EVAL = "eval"
DEMO = "demo.json"
REPORT = "report"
MARKER = ".gmvaluator-run"
LOCK = ".gmvaluator-lock"

#: What a run writes, less the marker and the lock: what ``--overwrite`` removes.
OUTPUTS = (CONFIG, RECORD, VALUES, ATTRIBUTIONS, RESULT, GENERATED, NEIGHBOURS, CONTRIBUTORS,
           SKIPPED, LEDGER, f"{LEDGER}-wal", f"{LEDGER}-shm", INDEX, EMBEDDINGS, EVAL, DEMO,
           REPORT)  # fmt: skip

#: What each use of a finished run reads, by purpose.
NEEDS: dict[str, tuple[str, ...]] = {
    "append": (CONFIG, RECORD, VALUES, ATTRIBUTIONS, RESULT, INDEX_META),
    "serve": (CONFIG, RECORD, VALUES, INDEX_META),
    "report": (VALUES, ATTRIBUTIONS, RECORD),
    "top": (VALUES,),
}


class RunFolder:
    """The folder of one valuation run (see the module docstring for its layout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- the layout -----------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def record(self) -> Path:
        return self.path / RECORD

    @property
    def values(self) -> Path:
        return self.path / VALUES

    @property
    def attributions(self) -> Path:
        return self.path / ATTRIBUTIONS

    @property
    def skipped(self) -> Path:
        return self.path / SKIPPED

    @property
    def index(self) -> Path:
        return self.path / INDEX

    def embeddings(self, role: str) -> Path:
        return self.path / EMBEDDINGS / role

    def evaluation(self, criterion: str) -> Path:
        return self.path / EVAL / f"{criterion}.json"

    # -- what it holds --------------------------------------------------------------------
    def is_run(self) -> bool:
        """Whether a run was started here: a folder with the marker or its settings."""
        return (self.path / MARKER).is_file() or self.config.is_file()

    def missing(self, purpose: str) -> list[str]:
        """The files that ``purpose`` (a key of ``NEEDS``) reads and the folder lacks."""
        return [name for name in NEEDS[purpose] if not (self.path / name).is_file()]

    def is_finished(self, purpose: str) -> bool:
        return self.path.is_dir() and not self.missing(purpose)

    def require_finished(self, purpose: str) -> RunFolder:
        """This folder, when it holds what ``purpose`` reads; else one ``InputError`` that names
        the missing files and how to make them."""
        if not self.path.is_dir():
            raise InputError(
                f"{self.path} is not a folder. Give the --out folder of a finished "
                "`gmvaluator value` or `gmvaluator demo` run."
            )
        missing = self.missing(purpose)
        if missing:
            raise InputError(
                f"{self.path} is not a finished valuation run: {', '.join(missing)} missing "
                f"({purpose} reads them). Run `gmvaluator value --train ... --generated ... "
                f"--out {self.path}` to completion first."
            )
        return self

    def read_settings(self) -> dict[str, Any]:
        return dict(read_json(self.config))

    def read_record(self) -> dict[str, Any]:
        return dict(read_json(self.record))

    # -- writing --------------------------------------------------------------------------
    def check_settings(self, settings: dict[str, Any], overwrite: bool = False) -> list[str]:
        """Start or resume a run with ``settings``, then record them; returns what it removed.

        Settings are fixed once a run has finished with them (``run.json``): a finished run
        made with other settings is refused, naming the keys that differ, unless
        ``overwrite``, which removes every file of the previous run. The leftovers of a run that
        stopped before it finished, with other settings, are replaced (its embeddings stay:
        each is reused only when it matches what the new run would compute).
        """
        if self.path.is_dir():
            self.remove_stale_temps()
        removed: list[str] = []
        if overwrite:
            removed = self.remove_outputs()
        elif self.config.is_file():
            changed = diff_settings(self.read_settings(), settings)
            if changed and self.record.is_file():
                raise ResumeError(
                    f"run folder {self.path} was made with different settings: "
                    f"{', '.join(changed)}. Use a new --out folder, or --overwrite to replace it."
                )
            if changed:
                removed = self.remove_outputs(keep=(EMBEDDINGS,))
        said = [name for name in removed if name != CONFIG]
        if said:
            log.warning("removed the previous run's %s from %s", ", ".join(said), self.path)
        write_json(self.config, settings)
        return removed

    def remove_outputs(self, keep: Sequence[str] = ()) -> list[str]:
        """Delete the files and folders a run writes (``OUTPUTS``), but those in ``keep``;
        returns the names removed. Nothing else in the folder is touched."""
        removed = []
        for name in OUTPUTS:
            path = self.path / name
            if name in keep or not (path.exists() or path.is_symlink()):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(name)
        return removed

    def write_record(self, record: dict[str, Any]) -> None:
        """Write ``run.json``, the last file of a run."""
        write_json(self.record, record)

    def remove_stale_temps(self) -> int:
        """Delete the tool's own temporary files that a killed run left behind (named by
        ``gmvaluator.files.atomic_path``; no other file); returns how many."""
        if not self.is_run():
            return 0
        removed = 0
        for name in (".", EMBEDDINGS, INDEX, EVAL, REPORT):
            folder = self.path / name
            if not folder.is_dir():
                continue
            found = folder.rglob("*") if name != "." else folder.iterdir()
            for tmp in found:
                if is_own_temp(tmp) and tmp.is_file() and not tmp.is_symlink():
                    tmp.unlink(missing_ok=True)
                    removed += 1
        return removed

    # -- one writer, in a folder that may be written ------------------------------------------
    def check_out(self, sources: Sequence[str] = ()) -> None:
        """Refuse, before anything is written, a path that is a file, a folder holding
        anything but a run, or a path on or inside one of the input ``sources``."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise InputError(
                f"{path} is a file, not a run folder. Give a new folder, an empty one or the "
                "folder of an earlier run.",
                param="out",
            )
        here = path.expanduser().resolve()
        for spec in sources:
            source = source_path(spec)
            if source is not None and (here == source or source in here.parents):
                raise InputError(
                    f"{path} is on or inside the input source {spec}; a run would write among "
                    "its items. Give a folder outside every input.",
                    param="out",
                )
        if path.is_dir() and not self.is_run() and any(path.iterdir()):
            raise InputError(
                f"{path} is a folder that holds other files and no run. Give a new folder, an "
                "empty one or the folder of an earlier run; nothing was written.",
                param="out",
            )

    @contextlib.contextmanager
    def writing(self, sources: Sequence[str] = ()) -> Iterator[RunFolder]:
        """Hold the folder for one writer: check it (``check_out``), mark it as a run folder and
        lock it for the block; a second writer meanwhile gets an ``InputError`` naming the
        process that holds it."""
        self.check_out(sources)
        self.path.mkdir(parents=True, exist_ok=True)
        marker = self.path / MARKER
        if not marker.is_file():
            write_json(marker, {"what": "a gmvaluator run folder"})
        with hold_lock(self.path / LOCK, self.path):
            yield self


F = TypeVar("F", bound=Callable[..., Any])


def holding_lock(func: F) -> F:
    """Decorate a function whose first argument is an existing run folder that it writes: the
    folder's lock is held for the call (see ``RunFolder.writing``)."""

    @functools.wraps(func)
    def locked(run_dir: str | Path, *args: Any, **kwargs: Any) -> Any:
        path = Path(run_dir)
        if not path.is_dir():  # the function names what is wrong
            return func(run_dir, *args, **kwargs)
        with hold_lock(path / LOCK, path):
            return func(run_dir, *args, **kwargs)

    return locked  # type: ignore[return-value]


def writes_run(func: F) -> F:
    """Decorate a function whose first argument is the run folder it makes (a new, empty or
    run folder): the folder is checked, marked and locked for the call (``RunFolder.writing``),
    so that what it writes before its run starts lands in a run folder."""

    @functools.wraps(func)
    def locked(run_dir: str | Path, *args: Any, **kwargs: Any) -> Any:
        with RunFolder(run_dir).writing():
            return func(run_dir, *args, **kwargs)

    return locked  # type: ignore[return-value]


def writing(folder: RunFolder | None, sources: Sequence[str] = ()) -> Any:
    """``folder.writing(sources)``, or nothing to hold when there is no run folder."""
    return contextlib.nullcontext() if folder is None else folder.writing(sources)


#: The locks this process holds, with how many blocks hold each: a process that holds a run
#: folder may enter it again (a demo that writes its samples, then values them).
_HELD: dict[Path, int] = {}


@contextlib.contextmanager
def hold_lock(lock: Path, run: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock`` for the block; the file says who holds it."""
    key = lock.resolve()
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    with _flock(lock, run):
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]


@contextlib.contextmanager
def _flock(lock: Path, run: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown"
            raise InputError(
                f"run folder {run} is being written by another process ({holder}). Wait for it "
                "to finish, or give another --out."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)}".encode()[:4000], 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def source_path(spec: str) -> Path | None:
    """The resolved path of a source spec; None for a built-in one."""
    if spec.startswith("builtin:"):
        return None
    return Path(spec).expanduser().resolve()
