"""The credit rule: how each generated sample's credit is shared among its top-k matches.

    V(x_i, g_j) = q_j * exp(-d_ij / T) / sum_{l in P_j} exp(-d_lj / T)   for i in P_j, else 0
    phi_i       = sum_j V(x_i, g_j)

This module is the one home of that rule. The valuator, the re-rank, the append of a batch, the
evaluation harness and the service all call ``CreditRule.assign`` (or ``softmax_credit`` for
the per-match credits alone), so a change of the rule lands everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gmvaluator.errors import InputError, check_param


def softmax_credit(
    distances: np.ndarray, temperature: float = 1.0, quality: np.ndarray | None = None
) -> np.ndarray:
    """Credit of each match: a softmax of -d/T over each row, scaled by that row's quality.

    Stable for any distance scale: the row minimum is subtracted before ``exp``, so the best
    match has weight exactly 1 and the sum never underflows to zero. Rows sum to ``quality``.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2:
        raise InputError(f"distances must be 2-D (generated, k); got shape {d.shape}.")
    check_param("softmax_credit", "temperature", temperature, temperature > 0, "a float > 0")
    w = np.exp(-(d - d.min(axis=1, keepdims=True)) / temperature)
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
    """The settings of the credit rule (today the softmax temperature T)."""

    temperature: float = 1.0

    def credits(self, distances: np.ndarray, quality: np.ndarray | None = None) -> np.ndarray:
        """(m, k) credit of each match, rows summing to ``quality`` (1 when None)."""
        return softmax_credit(distances, self.temperature, quality)

    def assign(
        self,
        distances: np.ndarray,
        rows: np.ndarray,
        n_train: int,
        quality: np.ndarray | None = None,
    ) -> Credit:
        """Credits of the (m, k) matches ``rows`` at ``distances``, summed per training row."""
        credit = self.credits(distances, quality)
        flat = np.asarray(rows).ravel()
        return Credit(
            credits=credit,
            values=np.bincount(flat, weights=credit.ravel(), minlength=n_train),
            n_matches=np.bincount(flat, minlength=n_train),
        )

    def describe(self) -> dict[str, Any]:
        return {"rule": "softmax", "temperature": self.temperature}
