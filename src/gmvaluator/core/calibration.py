"""The training set's own yardstick of "close", measured once at fit time.

For a seeded sample of training items (``SAMPLE``) take the distance to the nearest *other*
training item (``nn``), in the run's space and metric. Three constants of the credit rule come
from those distances, and only from them, so that values stay additive over generated samples
(an appended batch meets the same constants as a run from scratch):

- the temperature of each generated sample, relative to its best match's distance d_1:
  ``T = TEMPERATURE_FACTOR * max(d_1, floor)`` with ``floor`` the ``TEMPERATURE_FLOOR_QUANTILE``
  of nn. Credit then depends on how much further each rival lies than the best match: an edited
  copy (d_1 near 0, its rivals at ordinary neighbour distances) gives its source most of the
  credit, while an ordinary sample, whose matches lie at similar distances, shares it;
- the attributable share: a generated sample whose nearest match lies as close to it as
  training items lie to their own neighbours is fully attributable; one far outside hands out
  little (``share``);
- the density bandwidth ``h = BANDWIDTH_FACTOR * median(nn)`` (``gmvaluator.core.density``).

The share compares the nearest match's distance with that item's own neighbour radius (its
``nn``, at least the ``FLOOR_QUANTILE`` of the sample so that duplicates do not make every match
look far): rho = d / radius. The sample's own ratios (each sampled item's ``nn`` over its
neighbour's radius) say how far "as close as the training items are" reaches: up to their
``RATIO_QUANTILE`` the share is 1; beyond, it decays as exp(-(rho - high) / (high - median)).
A global radius was not enough: on photo tiles with EfficientNet features, pure-noise images lie
as close to the nearest tile (0.33 cosine) as many tiles lie to their neighbours (median 0.21,
90 % 0.40), but 7 times further than that tile's own neighbour (docs/EVALUATION.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gmvaluator.errors import InputError

#: Training items whose nearest neighbours calibrate the rule.
SAMPLE = 2000
#: T_j = this x the best match's distance (chosen on photo tiles and the digits, docs/EVALUATION.md:
#: 1.5 gave an edited copy's source 62 % of its credit on average, 2 only 54 %, the paper's T = 1
#: 13 %; a global T = 0.3 x median(nn) gave 65 % but cost 0.01 of LDS on the digits).
TEMPERATURE_FACTOR = 1.5
#: ... and at least this quantile of the training set's nearest-neighbour distances.
TEMPERATURE_FLOOR_QUANTILE = 0.01
#: Density bandwidth h = this x the median nearest-neighbour distance.
BANDWIDTH_FACTOR = 2.0
#: Radii below this quantile of the sample's nearest-neighbour distances are raised to it.
FLOOR_QUANTILE = 0.1
#: Ratios up to this quantile of the training set's own are fully attributable.
RATIO_QUANTILE = 0.95

#: ``neighbours(rows, k) -> (distances, rows)``: the k nearest *other* training items of
#: training rows, nearest first (``Valuator`` supplies it from its index).
Neighbours = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Calibration:
    """What the credit rule knows of the training set: fixed at fit time, saved with the index."""

    metric: str
    sample: int
    median_nn: float
    floor: float
    ratio_median: float
    ratio_high: float
    temperature_floor: float

    def temperatures(self, nearest: np.ndarray) -> np.ndarray:
        """T_j of generated samples from their best match's distance."""
        return TEMPERATURE_FACTOR * np.maximum(
            np.asarray(nearest, np.float64), self.temperature_floor
        )

    @property
    def bandwidth(self) -> float:
        return BANDWIDTH_FACTOR * max(self.median_nn, self.floor)

    def radius(self, nn: np.ndarray) -> np.ndarray:
        """Neighbour radius of training items from their nearest-neighbour distances."""
        return np.maximum(np.asarray(nn, dtype=np.float64), self.floor)

    def share(self, nearest: np.ndarray, radius: np.ndarray) -> np.ndarray:
        """Attributable share a_j in [0, 1] of generated samples from their nearest match's
        distance and that match's radius."""
        rho = np.asarray(nearest, dtype=np.float64) / self.radius(radius)
        scale = max(self.ratio_high - self.ratio_median, 0.1)
        return np.exp(-np.maximum(rho - self.ratio_high, 0.0) / scale)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "temperature": "auto",
            "bandwidth": self.bandwidth,
            "rule": RULE.format(sample=self.sample, metric=self.metric),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(**{key: d[key] for key in cls.__dataclass_fields__})


RULE = (
    "from the nearest-neighbour distances nn of {sample} training items to the rest of the "
    f"training set ({{metric}}): T_j = {TEMPERATURE_FACTOR:g} x max(d_j1, the "
    f"{TEMPERATURE_FLOOR_QUANTILE:g} quantile of nn); share = 1 while the "
    "nearest match's distance over that item's own nn stays within the "
    f"{RATIO_QUANTILE:g} quantile of the same ratio among training items, then "
    "exp(-(ratio - that quantile) / (that quantile - median ratio)); density bandwidth "
    f"h = {BANDWIDTH_FACTOR:g} x median(nn)"
)


def calibrate(
    neighbours: Neighbours, n: int, metric: str, sample: int = SAMPLE, seed: int = 0
) -> Calibration:
    """Measure the training set's neighbour distances on a seeded sample of its rows."""
    if n < 2:
        raise InputError(
            "the credit rule is calibrated on the training set's nearest neighbours, which "
            f"needs at least 2 training items; got {n}. Use credit='paper'."
        )
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    d, nb = neighbours(rows, 1)
    nn = d[:, 0]
    median = float(np.median(nn))
    # duplicates put nn at 0; a radius of 0 would make every match of theirs look infinitely far
    floor = max(float(np.quantile(nn, FLOOR_QUANTILE)), 1e-3 * median, 1e-12)
    # each sampled item's distance over its neighbour's radius: how close training items are
    uniq, inverse = np.unique(nb[:, 0], return_inverse=True)
    d_nb, _ = neighbours(uniq, 1)
    ratio = nn / np.maximum(d_nb[inverse.ravel(), 0], floor)
    return Calibration(
        metric=metric,
        sample=len(rows),
        median_nn=median,
        floor=floor,
        ratio_median=float(np.median(ratio)),
        ratio_high=float(np.quantile(ratio, RATIO_QUANTILE)),
        temperature_floor=max(
            float(np.quantile(nn, TEMPERATURE_FLOOR_QUANTILE)), 1e-3 * median, 1e-12
        ),
    )
