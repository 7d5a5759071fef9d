"""dattri's TRAK, TracIn and gradient dot product as baselines, on a small CVAE of the digits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gmvaluator.errors import InputError
from gmvaluator.evaluate.peers import peer_attributions, tuned_peer

# one batch per side: dattri regenerates its CPU projection for every batch
FAST: dict[str, Any] = {"proj_dim": 128, "batch_size": 256}


@pytest.fixture(scope="module")
def setting(digits_images: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    from gmvaluator.evaluate.generators.reference import train_reference

    x, y = digits_images
    rows = np.random.default_rng(0).choice(len(x), 200, replace=False)
    xt, yt = x[rows], y[rows]
    model = train_reference("cvae", xt, yt, n_classes=10, seed=0, epochs=2)
    gy = np.repeat(np.arange(10), 2)
    gen = (model.sample(gy, seed=1), gy)
    return {"model": model, "train": (xt, yt), "gen": gen, "runs": {}}


def attributions(setting: dict[str, Any], method: str, **options: Any) -> np.ndarray:
    """The attributions of ``method`` on the setting, computed once per set of options."""
    key = (method, *sorted(options.items()))
    if key not in setting["runs"]:
        inputs = (setting["model"], *setting["train"], *setting["gen"])
        setting["runs"][key] = peer_attributions(method, *inputs, **{**FAST, **options})
    return setting["runs"][key]


def test_huge_regularization_makes_trak_rank_like_grad_dot(setting: dict[str, Any]) -> None:
    from scipy.stats import spearmanr

    dot = attributions(setting, "grad-dot")
    trak = attributions(setting, "trak", regularization=1e9)
    assert dot.shape == trak.shape == (20, 200)
    assert np.isfinite(dot).all() and np.isfinite(trak).all()
    rho = [spearmanr(a, b).statistic for a, b in zip(trak, dot, strict=True)]
    assert np.mean(rho) > 0.9
    # a small regularization weighs directions by the kernel: another ranking
    low = attributions(setting, "trak", regularization=1e-2)
    assert np.mean([spearmanr(a, b).statistic for a, b in zip(low, dot, strict=True)]) < 0.9


def test_seeded_runs_repeat_and_the_seed_draws_the_noise(setting: dict[str, Any]) -> None:
    first = attributions(setting, "trak", regularization=1e-2)
    again = peer_attributions("trak", setting["model"], *setting["train"], *setting["gen"],
                              regularization=1e-2, seed=0, **FAST)  # fmt: skip
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, attributions(setting, "trak", regularization=1e-2, seed=1))


def test_a_copy_of_a_training_item_is_helped_most_by_it(setting: dict[str, Any]) -> None:
    """The sign convention: larger means the item lowered the sample's loss, so item i ranks
    at the top of the row of a generated copy of it (whose noise draws differ from its own;
    4 draws average most of that noise out). Flipped signs would put it near rank 199."""
    xt, yt = setting["train"]
    copies = np.arange(0, 200, 20)
    for method in ("tracin", "trak"):
        tau = peer_attributions(method, setting["model"], xt, yt, xt[copies], yt[copies],
                                regularization=1.0 if method == "trak" else None,
                                draws=4, **FAST)  # fmt: skip
        assert tau.shape == (10, 200)
        ranks = (tau > tau[np.arange(10), copies][:, None]).sum(axis=1)
        assert np.median(ranks) <= 2 and ranks.max() < 10, ranks


def test_tuned_peer_picks_the_regularization_with_the_best_lds(setting: dict[str, Any]) -> None:
    """Outputs that are exactly the linear datamodel of one regularization give it LDS 1."""
    target = attributions(setting, "trak", regularization=1e-2)
    rng = np.random.default_rng(0)
    subsets = np.zeros((12, 200), dtype=bool)
    for r in range(12):
        subsets[r, rng.choice(200, 100, replace=False)] = True
    outputs = subsets.astype(float) @ target.T
    tuned = tuned_peer("trak", setting["model"], *setting["train"], *setting["gen"],
                       subsets=subsets, outputs=outputs, grid=(1e9, 1e-2), **FAST)  # fmt: skip
    assert tuned.regularization == 1e-2
    assert tuned.lds_by_value[1e-2] == pytest.approx(1.0)
    assert tuned.lds_by_value[1e9] < 0.9
    np.testing.assert_array_equal(tuned.attributions, target)


def test_bad_requests_name_the_parameter(setting: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="'method' parameter of peer_attributions"):
        attributions(setting, "influence")
    with pytest.raises(InputError, match="'regularization' parameter"):
        attributions(setting, "trak", regularization=-1.0)
    with pytest.raises(InputError, match="grad-dot takes one model but got 2"):
        peer_attributions("grad-dot", [setting["model"]] * 2, *setting["train"], *setting["gen"])
