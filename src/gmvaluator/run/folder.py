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

Lower layers write some of these under the same names (``ValuationResult.save`` its five
files, ``gmvaluator.rights`` the ledger and contributors, engines the embeddings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gmvaluator.config import diff_settings
from gmvaluator.engines.base import EMBEDDINGS
from gmvaluator.errors import InputError, ResumeError
from gmvaluator.files import read_json, write_json

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
        """Whether a run was started here: a folder with its settings (``config.json``)."""
        return self.config.is_file()

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
    def check_settings(self, settings: dict[str, Any], overwrite: bool = False) -> None:
        """Start or resume a run with ``settings``: refuse a folder made with other settings,
        naming the keys that differ (unless ``overwrite``), then record them."""
        if self.path.is_dir():
            self.remove_stale_temps()
        if self.config.is_file() and not overwrite:
            changed = diff_settings(self.read_settings(), settings)
            if changed:
                raise ResumeError(
                    f"run folder {self.path} was made with different settings: "
                    f"{', '.join(changed)}. Use a new --out folder, or --overwrite to replace it."
                )
        write_json(self.config, settings)

    def write_record(self, record: dict[str, Any]) -> None:
        """Write ``run.json``, the last file of a run."""
        write_json(self.record, record)

    def remove_stale_temps(self) -> int:
        """Delete temporary files that a killed run left behind; returns how many."""
        removed = 0
        for tmp in self.path.rglob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed
