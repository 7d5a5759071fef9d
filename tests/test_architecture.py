"""The rules of the layout that no linter of ours checks: library modules never print or know
about the command line, and no module imports another module's private names.

(The layer order itself is import-linter's contract in pyproject.toml, run by the test script;
``test_layers_contract_holds`` runs it here too when import-linter is installed.)
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gmvaluator"
CLI = SRC / "cli"


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "templates" not in p.parts)


def _name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, imported name or None) of every import in the file, lazy ones too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _name(path) if path.name == "__init__.py" else _name(path).rpartition(".")[0]
    out: list[tuple[int, str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, None) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            out.extend((node.lineno, module, a.name) for a in node.names)
    return out


def _same_package(importer: str, module: str) -> bool:
    """A private name may be shared inside one package (its folder), not across folders."""
    return importer.rpartition(".")[0] == module.rpartition(".")[0] or module.startswith(
        importer + "."
    )


def test_no_module_imports_another_modules_private_names():
    found = []
    for path in _modules():
        me = _name(path)
        for line, module, name in _imports(path):
            if not module.startswith("gmvaluator"):
                continue
            private_module = any(p.startswith("_") and p != "__init__" for p in module.split("."))
            private_name = name is not None and name.startswith("_") and name != "__version__"
            if (private_module or private_name) and not _same_package(me, module):
                found.append(f"{path.relative_to(SRC)}:{line} imports {module}.{name or ''}")
    assert not found, "\n".join(found)


def test_library_modules_never_print_nor_import_typer():
    found = []
    for path in _modules():
        if CLI in path.parents:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                found.append(f"{path.relative_to(SRC)}:{node.lineno} calls print")
        for line, module, _ in _imports(path):
            if module.split(".")[0] == "typer":
                found.append(f"{path.relative_to(SRC)}:{line} imports typer")
    assert not found, "\n".join(found)


def test_layers_contract_holds():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install import-linter)")
    res = subprocess.run(
        [exe, "--no-cache"], cwd=SRC.parents[1], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout[-3000:]
