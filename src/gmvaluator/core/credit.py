"""The credit rule: how each generated sample's credit is shared among its top-k matches.

    V(x_i, g_j) = q_j * a_j * exp(-d_ij / T) / sum_{l in P_j} exp(-d_lj / T)   for i in P_j
    phi_i       = sum_j V(x_i, g_j)

Two rules, one flag apart (``credit``):

- ``calibrated`` (the default): T and the attributable share a_j in [0, 1] come from the
  training set's own nearest-neighbour distances, measured at fit time
  (``gmvaluator.core.calibration``): a match much closer than its rivals takes most of the
  sample's credit, and a sample far from all training data hands out little of it; what it does
  not hand out, q_j (1 - a_j), is reported as unattributed.
- ``paper``: the GMValuator paper's formula, T = 1 (or the given temperature) and a_j = 1.

This module is the one home of that rule. The valuator, the re-rank, the append of a batch, the
evaluation harness and the service all call ``CreditRule.assign`` (or ``CreditRule.credits``
for the per-match credits alone), so a change of the rule lands everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gmvaluator.core.calibration import Calibration
from gmvaluator.errors import InputError, check_param

CREDIT_RULES = ("calibrated", "paper")
#: The paper's temperature, used by ``credit="paper"`` when none is given.
PAPER_TEMPERATURE = 1.0


def softmax_credit(
    distances: np.ndarray, temperature: Any = 1.0, quality: np.ndarray | None = None
) -> np.ndarray:
    """Credit of each match: a softmax of -d/T over each row, scaled by that row's quality.
    ``temperature`` is one T, or one per row.

    Stable for any distance scale: the row minimum is subtracted before ``exp``, so the best
    match has weight exactly 1 and the sum never underflows to zero. Rows sum to ``quality``.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2:
        raise InputError(f"distances must be 2-D (generated, k); got shape {d.shape}.")
    t = np.asarray(temperature, dtype=np.float64)
    check_param("softmax_credit", "temperature", temperature, bool(np.all(t > 0)), "a float > 0")
    w = np.exp(-(d - d.min(axis=1, keepdims=True)) / (t[:, None] if t.ndim else t))
    credit = w / w.sum(axis=1, keepdims=True)
    if quality is not None:
        credit *= np.asarray(quality, dtype=np.float64)[:, None]
    return credit


@dataclass(frozen=True)
class Credit:
    """What the rule hands out for one set of matches.

    ``credits`` (m, k) per match; ``values`` (n,) their sum per training row; ``n_matches``
    (n,) how many generated samples matched each training row.
    """

    credits: np.ndarray
    values: np.ndarray
    n_matches: np.ndarray


@dataclass(frozen=True)
class CreditRule:
    """The constants of the credit rule: T, and the training set's calibration (None: the
    paper's rule, under which every generated sample hands out its q_j in full)."""

    #: one T for every sample, or None: each sample's own, from its best match (calibrated)
    temperature: float | None = PAPER_TEMPERATURE
    calibration: Calibration | None = None

    @property
    def name(self) -> str:
        return "paper" if self.calibration is None else "calibrated"

    def credits(
        self,
        distances: np.ndarray,
        quality: np.ndarray | None = None,
        share: np.ndarray | None = None,
    ) -> np.ndarray:
        """(m, k) credit of each match, rows summing to quality x share (1 when None)."""
        weight = None
        if quality is not None or share is not None:
            m = len(distances)
            weight = np.ones(m) if quality is None else np.asarray(quality, dtype=np.float64)
            if share is not None:
                weight = weight * np.asarray(share, dtype=np.float64)
        t: Any = self.temperature
        if t is None:
            if self.calibration is None:
                raise InputError("a per-sample temperature needs the training set's calibration.")
            t = self.calibration.temperatures(np.asarray(distances, dtype=np.float64)[:, 0])
        return softmax_credit(distances, t, weight)

    def assign(
        self,
        distances: np.ndarray,
        rows: np.ndarray,
        n_train: int,
        quality: np.ndarray | None = None,
        share: np.ndarray | None = None,
    ) -> Credit:
        """Credits of the (m, k) matches ``rows`` at ``distances``, summed per training row."""
        credit = self.credits(distances, quality, share)
        flat = np.asarray(rows).ravel()
        return Credit(
            credits=credit,
            values=np.bincount(flat, weights=credit.ravel(), minlength=n_train),
            n_matches=np.bincount(flat, minlength=n_train),
        )

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` and the report say about the rule."""
        t = "auto" if self.temperature is None else self.temperature
        out: dict[str, Any] = {"credit": self.name}
        if self.calibration is None:
            out["rule"] = (
                f"the paper's softmax over the top-k matches, T = {t}; every "
                "generated sample hands out its quality q_j in full"
            )
        else:
            out.update(self.calibration.to_dict())
        out["temperature"] = t
        return out

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> CreditRule:
        calibration = None if d.get("credit") == "paper" else Calibration.from_dict(d)
        t = d["temperature"]
        return cls(None if t == "auto" else float(t), calibration)


def resolve_temperature(temperature: float | str, calibration: Calibration | None) -> float | None:
    """T of a rule: a number as given; ``auto``: each sample's own from the calibration (None),
    or the paper's 1."""
    if temperature != "auto":
        return float(temperature)
    return PAPER_TEMPERATURE if calibration is None else None
