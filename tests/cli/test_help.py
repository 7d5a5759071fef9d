"""Help and settings say things one way: every default as "(default: X)", required options
marked, the embedders listed from their registry, the same option names across ``evaluate``,
RUN as an argument, and every flag of ``value`` accepted in the TOML ``[value]`` table."""

from __future__ import annotations

import json
import re

import pytest
import typer
from typer.testing import CliRunner

from gmvaluator.cli import app
from gmvaluator.cli.common import HUB_EMBEDDERS

runner = CliRunner()


def help_of(*command: str) -> str:
    res = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    return re.sub(r"\s+", " ", res.output.replace("│", " "))


def all_commands() -> list[tuple[str, ...]]:
    root = typer.main.get_command(app)
    out = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        out += [(name, sub) for sub in subs] if subs else [(name,)]
    return out


@pytest.mark.parametrize("command", all_commands(), ids=" ".join)
def test_every_default_is_stated_one_way(command) -> None:
    text = help_of(*command)
    assert "[default:" not in text  # typer's own form, and its "(X)" variant, are gone
    for default in re.findall(r"\(default: ([^)]*)\)", text):
        assert default and not default.startswith("("), (command, default)


def test_value_help_states_defaults_that_were_written_in_brackets_and_marks_required() -> None:
    text = help_of("value")
    assert "Ledger: a file, postgresql:// URL or none. (default: RUN/ledger.sqlite)" in text
    assert "file:CSV or a CSV of id,quality. (default: none)" in text
    assert "Required, unless --append" in text and "[required]" in text
    assert "(default: 10)" in text and "(default: flag)" in text


def test_the_embedder_option_lists_every_embedder_of_the_registry() -> None:
    from gmvaluator.embed.registry import known_embedders

    for command in (("value",), ("demo",), ("evaluate", "c1")):
        text = help_of(*command)
        for name in [*known_embedders(), *HUB_EMBEDDERS]:
            assert name in text, (command, name)


def test_evaluate_subcommands_share_option_names_and_take_run_as_an_argument() -> None:
    for sub in ("c1", "c2", "sensitivity", "c4", "membership"):
        text = help_of("evaluate", sub)
        assert " --k " in text and "--ks" not in text and "--out" not in text, sub
        assert "RUN" in text and "Run folder; results go to RUN/eval/" in text, sub
    res = runner.invoke(app, ["evaluate", "c1"])
    assert res.exit_code == 2 and "evaluate c1 needs RUN" in res.output


def test_the_toml_table_takes_every_flag_and_flags_win(tmp_path, value_run) -> None:
    toml = tmp_path / "settings.toml"
    toml.write_text(
        '[value]\nquality = "sharpness"\non_error = "skip"\nk = 3\nnear_copy_quantile = 0.05\n'
        'opt_out = "flag"\nledger = "none"\n'
    )
    out = tmp_path / "runs" / "toml"
    res = value_run(out, "builtin:digits[:100]", "builtin:digits[100:110]", "--config", toml)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quality"] == "sharpness" and cfg["near_copy_quantile"] == 0.05
    assert cfg["k"] == 5  # --k 5 given on the command line wins over the file's 3
    assert "skipped 0 bad items" in res.stdout  # on_error = "skip" from the file
    record = json.loads((out / "run.json").read_text())
    assert record["quality"]["backend"] == "sharpness"
    toml.write_text('[value]\nqualty = "sharpness"\n')
    res = runner.invoke(
        app,
        ["value", "--train", "builtin:digits[:50]", "--generated", "builtin:digits[50:55]",
         "--out", str(tmp_path / "runs" / "bad"), "--config", str(toml)],
    )  # fmt: skip
    assert res.exit_code == 2 and "unknown keys ['qualty']" in res.output
    assert "'on_error'" in res.output and "'quality'" in res.output  # listed as known keys
