"""The package as pip installs it: a wheel built from the checkout holds the package, the
report's templates and script, the extras the README names and the ``gmvaluator`` command."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_the_package_templates_extras_and_command(tmp_path) -> None:
    # a copy of what the build reads, so that building leaves nothing in the checkout
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(
        ROOT / "src", checkout / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(checkout)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("gmvaluator-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(meta_name).decode()
        entry = zf.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    templates = {p.name for p in (ROOT / "src/gmvaluator/report/templates").iterdir()}
    assert {"page.html", "report.css", "report.js"} <= templates
    for name in templates:
        assert f"gmvaluator/report/templates/{name}" in names, name
    for module in ("cli/app.py", "sources/webdataset.py", "sources/tables.py", "sources/hf.py"):
        assert f"gmvaluator/{module}" in names, module
    for extra in ("all", "report", "images", "hf-datasets"):
        assert f"Provides-Extra: {extra}" in metadata, extra
    assert "gmvaluator = gmvaluator.cli:run" in entry
