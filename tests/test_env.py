"""Every GMVALUATOR_* variable is declared once in ``gmvaluator.env`` and read only through it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gmvaluator import env
from gmvaluator.errors import InputError

SRC = Path(env.__file__).parent
ROOT = SRC.parents[1]


def _python_files():
    return sorted(p for p in SRC.rglob("*.py") if p != Path(env.__file__))


def test_every_variable_named_in_the_code_docs_and_scripts_is_declared():
    named = set()
    sources = [*_python_files(), ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
               *(ROOT / "scripts").glob("*.sh")]  # fmt: skip
    for path in sources:
        named |= set(re.findall(r"GMVALUATOR_[A-Z0-9_]+", path.read_text()))
    assert named and named <= set(env.VARIABLES), sorted(named - set(env.VARIABLES))
    for var in env.VARIABLES.values():
        assert var.name.startswith("GMVALUATOR_") and var.meaning.endswith(".")


def test_no_module_but_env_reads_a_variable_of_ours():
    for path in _python_files():
        text = path.read_text()
        assert '"GMVALUATOR_' not in text, f"{path} spells a variable name of its own"
        assert not re.search(r"(environ|getenv)\W+[^\n]*GMVALUATOR_", text), path


def test_getters_read_the_variable_when_asked(monkeypatch):
    monkeypatch.delenv("GMVALUATOR_MEMORY_BYTES", raising=False)
    assert env.MEMORY_BYTES.text() is None and env.MEMORY_BYTES.integer() is None
    monkeypatch.setenv("GMVALUATOR_MEMORY_BYTES", "")  # empty counts as unset
    assert env.MEMORY_BYTES.integer() is None
    monkeypatch.setenv("GMVALUATOR_MEMORY_BYTES", "2048")
    assert env.MEMORY_BYTES.integer() == 2048
    monkeypatch.setenv("GMVALUATOR_CACHE", "/somewhere/cache")
    assert env.CACHE.path() == Path("/somewhere/cache")
    assert env.declared("GMVALUATOR_CACHE") is env.CACHE


def test_a_bad_value_or_an_undeclared_name_is_refused(monkeypatch):
    monkeypatch.setenv("GMVALUATOR_MEMORY_BYTES", "lots")
    with pytest.raises(InputError, match=r"GMVALUATOR_MEMORY_BYTES='lots' is not an integer"):
        env.MEMORY_BYTES.integer()
    with pytest.raises(KeyError, match="GMVALUATOR_NOPE is not declared"):
        env.declared("GMVALUATOR_NOPE")


def test_the_variables_reach_their_readers(monkeypatch, tmp_path):
    from gmvaluator.embed.cache import default_cache_dir
    from gmvaluator.sources.builtin import fashion_mnist_dir

    monkeypatch.setenv("GMVALUATOR_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("GMVALUATOR_FASHION_MNIST_DIR", str(tmp_path / "f"))
    assert default_cache_dir() == tmp_path / "c" and fashion_mnist_dir() == tmp_path / "f"
    monkeypatch.delenv("GMVALUATOR_FASHION_MNIST_DIR")
    assert fashion_mnist_dir() == Path("/usr/share/datasets/fashion-mnist")
