"""The training set's yardstick: temperature, attributable share and bandwidth from its own
nearest-neighbour distances."""

from __future__ import annotations

import numpy as np
import pytest

from gmvaluator.core import calibration as cal
from gmvaluator.errors import InputError


def _neighbours(x: np.ndarray):
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)

    def neighbours(rows: np.ndarray, k: int):
        order = np.argsort(d[rows], axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d[rows], order, 1), order

    return neighbours, d.min(axis=1)


def test_constants_come_from_the_training_sets_own_neighbour_distances(digits_pixels):
    x = digits_pixels[0][:400].astype(np.float64)
    neighbours, nn = _neighbours(x)
    c = cal.calibrate(neighbours, len(x), "sqeuclidean", sample=400)
    assert c.median_nn == pytest.approx(np.median(nn))
    floor = np.quantile(nn, cal.TEMPERATURE_FLOOR_QUANTILE)
    assert c.temperature_floor == pytest.approx(max(floor, c.floor / 10))
    # each sample's T follows its best match's distance, and no copy makes it vanish
    t = c.temperatures(np.array([0.0, 10 * c.median_nn]))
    assert t[0] == pytest.approx(cal.TEMPERATURE_FACTOR * c.temperature_floor) and t[0] > 0
    assert t[1] == pytest.approx(cal.TEMPERATURE_FACTOR * 10 * c.median_nn)
    assert c.bandwidth == pytest.approx(cal.BANDWIDTH_FACTOR * np.median(nn))
    assert 1.0 <= c.ratio_median <= c.ratio_high
    assert cal.Calibration.from_dict(c.to_dict()) == c


def test_share_is_one_within_the_training_ratios_and_decays_beyond():
    c = cal.Calibration(
        "cosine",
        100,
        median_nn=0.2,
        floor=0.05,
        ratio_median=1.1,
        ratio_high=2.0,
        temperature_floor=0.01,
    )
    radius = np.full(4, 0.1)
    a = c.share(np.array([0.0, 0.2, 0.29, 0.7]), radius)
    assert a[0] == a[1] == 1.0
    np.testing.assert_allclose(a[2], np.exp(-(2.9 - 2.0) / 0.9))
    assert a[3] < 0.01
    # radii below the floor count as the floor: a duplicate's match is not "far"
    assert c.share(np.array([0.1]), np.array([0.0]))[0] == 1.0


def test_one_training_item_cannot_be_calibrated():
    with pytest.raises(InputError, match="at least 2 training items"):
        cal.calibrate(lambda rows, k: (np.zeros((1, 1)), np.zeros((1, 1), int)), 1, "cosine")
