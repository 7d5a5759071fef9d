"""The experiments end to end on the real digits, at a small size."""

from __future__ import annotations

import numpy as np
import pytest

from gmvaluator.errors import InputError
from gmvaluator.evaluate import ValuerSpec, group_labels
from gmvaluator.evaluate import experiments as ex
from gmvaluator.evaluate.data import DIGIT_GROUPS, inject

PIXELS = ValuerSpec("default")
RANDOM = ValuerSpec("random", random=True)


def test_c1_pipeline_is_near_one_and_random_valuer_near_chance(digits_images):
    x, y = digits_images
    res = ex.run_identical(
        x, y, [PIXELS, RANDOM], ks=(10, 50), seeds=(0,), draws=2, per_class=5, family="gmm"
    )
    real, rand = res["valuers"]["default"], res["valuers"]["random"]
    assert real["k=10"]["mean"] > 0.85
    assert abs(rand["k=10"]["mean"] - 0.1) < 0.05 and abs(rand["k=50"]["mean"] - 0.1) < 0.03
    assert real["k=10"]["n"] == 2 and len(real["k=10"]["ci95"]) == 2


def test_c2_grouping_chance_level_is_the_group_share(digits_images):
    x, y = digits_images
    attr = group_labels(y, DIGIT_GROUPS)
    res = ex.run_identical(
        x,
        y,
        [PIXELS, RANDOM],
        attribute=attr,
        ks=(10,),
        seeds=(0,),
        draws=1,
        per_class=5,
        family="gmm",
    )
    assert res["criterion"] == "c2"
    assert res["valuers"]["default"]["k=10"]["mean"] > 0.9
    assert res["valuers"]["random"]["k=10"]["mean"] < 0.75  # groups of 40 % and 60 %


def test_inject_marks_exactly_the_added_items(digits_images):
    x, y = digits_images
    xi, yi, mask = inject(x[:100], y[:100], 7, 5, seed=3)
    assert len(xi) == 112 and mask.sum() == 12 and xi.dtype == np.uint8
    assert yi.max() <= 9
    # the injected rows are not digits from the original set
    originals = {row.tobytes() for row in x[:100]}
    assert not any(row.tobytes() in originals for row in xi[mask])


def test_c3_and_membership_run_and_give_scores_in_range(digits_images):
    x, y = digits_images
    c3 = ex.run_ood(
        x[:600],
        y[:600],
        [PIXELS, RANDOM],
        n_noise=20,
        n_photos=20,
        seeds=(0,),
        draws=1,
        per_class=30,
        family="gmm",
    )
    for name in ("default", "random"):
        assert 0 <= c3["valuers"][name]["auroc"]["mean"] <= 1
    mem = ex.run_membership(
        x[:600], y[:600], [PIXELS], seeds=(0,), draws=1, per_class=30, family="gmm"
    )
    assert 0 <= mem["valuers"]["default"]["p_value"]["mean"] <= 1


def test_lds_real_pipeline_beats_random_attributions(digits_images):
    x, y = digits_images
    res = ex.run_lds(x, y, [PIXELS, RANDOM], n_models=10, per_class=10, family="cvae", epochs=15)
    real = res["valuers"]["default"]["lds"]
    rand = res["valuers"]["random"]["lds"]
    assert res["setup"]["half_size"] == len(x) // 2
    assert abs(rand["mean"]) < 0.12
    assert real["mean"] > rand["mean"] + 0.05


def test_deletion_reports_every_arm(digits_images):
    x, y = digits_images
    res = ex.run_deletion(
        x[:400], y[:400], PIXELS, fraction=0.2, seeds=(0,), per_class=5, family="gmm"
    )
    arms = {f"{m}:{a}" for m in ("deletion", "insertion") for a in ("top", "bottom", "random")}
    assert set(res["valuers"]) == arms
    assert all(np.isfinite(v["fid:pixels"]["mean"]) for v in res["valuers"].values())


def test_efficiency_reports_stages_per_generated_sample(digits_images):
    x, _ = digits_images
    res = ex.run_efficiency(x, x[:50], [PIXELS])
    per = res["valuers"]["default"]["per_generated_sample_s"]
    assert {"embed_train_s", "embed_generated_s", "search_s", "total_s"} <= set(per)
    assert res["valuers"]["default"]["seconds"]["embed_train_s"] > 0


def test_bad_input_is_refused(digits_images):
    x, y = digits_images
    with pytest.raises(InputError, match="at least one seed"):
        ex.run_identical(x, y, [PIXELS], seeds=())
    with pytest.raises(InputError, match="LDS needs at least 2"):
        ex.run_lds(x, y, [PIXELS], n_models=1)
    with pytest.raises(InputError, match="gan family has no likelihood"):
        ex.run_lds(x, y, [PIXELS], family="gan")
    with pytest.raises(InputError, match="unknown generator family 'vae'"):
        ex.run_identical(x, y, [PIXELS], family="vae")
