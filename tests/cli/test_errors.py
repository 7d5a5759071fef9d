"""Library errors name Python parameters; the CLI adds the flags that set them."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from gmvaluator import InputError, Valuator
from gmvaluator.cli import app
from gmvaluator.cli.common import handle_errors

runner = CliRunner()


def test_a_too_large_k_names_k_in_python_and_its_flag_on_the_command_line(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 16)).astype(np.float32)
    with pytest.raises(InputError, match=r"^k=50 is larger than the training set \(20 items\); "
                       r"use k <= 20\.$") as err:  # fmt: skip
        Valuator(k=50).fit(x)
    assert err.value.param == ("k",)
    assert "--" not in str(err.value)
    np.save(tmp_path / "train.npy", x)
    args = ["value", "--train", tmp_path / "train.npy", "--generated", tmp_path / "train.npy",
            "--out", tmp_path / "run", "--quiet", "--k", "50"]  # fmt: skip
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 2, res.output
    assert res.stderr.strip() == (
        "error: k=50 is larger than the training set (20 items); use k <= 20. (set with --k)"
    )


def _command(params: tuple[str, ...]) -> typer.Typer:
    one = typer.Typer()

    @one.command()
    @handle_errors
    def run(
        n_candidates: int = typer.Option(0), seed: int = typer.Option(0), k: int = typer.Option(0)
    ) -> None:
        raise InputError("bad settings.", param=params)

    return one


@pytest.mark.parametrize(
    ("params", "tail"),
    [
        (("n_candidates", "random_state"), " (set with --n-candidates, --seed)"),
        (("k", "nprobe"), " (set with --k)"),  # nprobe: not an option of this command
        (("quantile",), ""),
        ((), ""),
    ],
)
def test_parameters_map_to_the_running_command_flags(params, tail):
    res = runner.invoke(_command(params), [])
    assert res.exit_code == 2
    assert res.stderr == f"error: bad settings.{tail}\n"
