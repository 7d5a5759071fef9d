"""Settings are declared once (``ValueConfig``): the CLI's help, the TOML table, a run's
``config.json`` and the modules that check each setting all agree with that declaration."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import typer

from gmvaluator import config
from gmvaluator.cli import app
from gmvaluator.cli.common import EMBEDDER_HELP
from gmvaluator.config import ValueConfig, load_config
from gmvaluator.errors import InputError


def _value_options() -> dict[str, Any]:
    """The options of ``gmvaluator value`` (click's, as typer builds them), by name."""
    command = typer.main.get_command(app).commands["value"]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params if p.param_type_name == "option"}


def test_every_value_flag_that_sets_a_setting_takes_its_help_from_the_declaration():
    opts = _value_options()
    settings = [f.name for f in dataclasses.fields(ValueConfig) if f.name in opts]
    # what is not a flag is set in the TOML file
    assert set(settings) >= {"embedder", "k", "index", "metric", "temperature", "rerank", "seed"}
    for name in settings:
        opt = opts[name]
        # the embedders are listed from their registry when the command is resolved
        expected = EMBEDDER_HELP if name == "embedder" else config.help_text(name)
        assert opt.help == expected, name
        assert opt.default is None, f"--{name} must not override the TOML file unless given"
        shown = config.shown_default(name)
        assert opt.show_default == (shown if shown is not None else False), name


def test_help_states_the_choices_and_the_default():
    assert config.help_text("index") == (
        "Index that recalls the candidates (each followed by an exact re-rank): "
        "auto, exact, pq or ivfpq."
    )
    assert config.shown_default("k") == "10" and config.shown_default("text_column") is None
    assert config.shown_default("embedder") == "by source kind"
    assert config.choices("k") == ()


def test_the_declared_choices_are_those_the_library_accepts():
    from gmvaluator import search
    from gmvaluator.core.rerank import RERANKERS
    from gmvaluator.embed.shards import EMBEDDING_DTYPES
    from gmvaluator.quality import NORMS

    assert set(config.choices("index")) == set(search.INDEX_KINDS)
    assert set(config.choices("metric")) == set(search.METRICS)
    assert set(config.choices("rerank")) == set(RERANKERS)
    assert set(config.choices("quality_norm")) == set(NORMS)
    assert set(config.choices("embedding_dtype")) == set(EMBEDDING_DTYPES)


def test_the_valuator_parameters_come_from_the_declaration():
    from gmvaluator import Valuator

    params = ValueConfig().valuator_params()
    assert params == Valuator().get_params()
    assert ValueConfig(seed=3, k=4).valuator_params()["random_state"] == 3


def test_defaults_then_toml_then_flags(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("[value]\nk = 7\nindex = 'exact'\nshard_size = 50\n")
    cfg = load_config(path, k=3, metric=None)
    assert (cfg.k, cfg.index, cfg.shard_size, cfg.metric) == (3, "exact", 50, "cosine")
    path.write_text("[value]\nkk = 7\n")
    with pytest.raises(InputError, match=r"unknown keys \['kk'\]; known keys are \['batch_size'"):
        load_config(path)
    with pytest.raises(InputError, match=r"unknown settings \['kk'\]"):
        load_config(None, kk=1)


def test_a_runs_recorded_settings_give_back_its_configuration():
    cfg = ValueConfig(k=4, index="ivfpq", rerank="none", embedding_dtype="float16")
    recorded = {"train": "a", "generated": "b", "opt_out": "flag", **cfg.to_dict()}
    assert ValueConfig.from_settings(recorded) == cfg
    assert ValueConfig.from_settings({"k": 2}) == ValueConfig(k=2)  # older runs: defaults
    with pytest.raises(InputError, match="unknown setting 'kk'"):
        config.setting("kk")
