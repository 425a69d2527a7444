"""Shift check: do new P(male) scores differ clearly from the validation scores stored with the model?

Two signs, each needing statistical significance AND a size that matters, on at least MIN_IMAGES images:
- the predicted-male rate at the threshold in use differs from the validation one (two-proportion z-test,
  gap >= RATE_GAP);
- the distribution of P(male) differs (two-sample Kolmogorov-Smirnov test, D >= KS_D).
The validation side is the summary stored in the decision ({"n", "quantiles"}: the scores themselves or
100 evenly spaced quantiles, so D is exact to within 0.01); its p-values use the true validation size n.
Either sign means the threshold chosen on validation may not transfer. A class mix that differs from
validation also moves both signs: the warning says the scores differ, not why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

MIN_IMAGES = 30  # fewer evaluated/predicted images: too few to say anything
ALPHA = 0.001  # "differ clearly": two tests, each at 0.1%
RATE_GAP = 0.10
KS_D = 0.10


@dataclass(frozen=True)
class ShiftCheck:
    """The comparison of `n` new scores with `n_val` validation scores at one threshold."""

    n: int
    n_val: int
    threshold: float
    positive_rate: float
    val_positive_rate: float
    rate_p: float
    ks_d: float
    ks_p: float

    @property
    def rate_shifted(self) -> bool:
        return abs(self.positive_rate - self.val_positive_rate) >= RATE_GAP and self.rate_p < ALPHA

    @property
    def scores_shifted(self) -> bool:
        return self.ks_d >= KS_D and self.ks_p < ALPHA

    @property
    def shifted(self) -> bool:
        return self.rate_shifted or self.scores_shifted

    def message(self) -> str:
        """The one-line warning."""
        return (
            f"warning: these {self.n} images score differently from the model's validation data "
            f"(predicted male {self.positive_rate:.0%} vs {self.val_positive_rate:.0%} on validation, p={_p(self.rate_p)}; "
            f"P(male) distribution KS D={self.ks_d:.2f}, p={_p(self.ks_p)}): "
            f"the threshold {self.threshold:.4f} may not transfer to them"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "n_validation": self.n_val, "threshold": self.threshold, "positive_rate": self.positive_rate,
            "validation_positive_rate": self.val_positive_rate, "positive_rate_p": self.rate_p, "ks_d": self.ks_d,
            "ks_p": self.ks_p, "shifted": self.shifted, "message": self.message() if self.shifted else None,
        }


def check_shift(scores: Mapping[str, Any] | None, probs: np.ndarray, threshold: float) -> ShiftCheck | None:
    """Compare `probs` (calibrated P(male) of readable images) with the stored validation `scores`;
    None when the model stores no scores or there are fewer than MIN_IMAGES images."""
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs[np.isfinite(probs)]
    if not scores or len(probs) < MIN_IMAGES:
        return None
    reference = np.asarray(scores["quantiles"], dtype=np.float64)
    n_val, n = int(scores["n"]), len(probs)
    rate, val_rate = float(np.mean(probs >= threshold)), float(np.mean(reference >= threshold))
    d = float(stats.ks_2samp(reference, probs).statistic)
    ks_p = float(stats.kstwobign.sf(d * math.sqrt(n * n_val / (n + n_val))))
    return ShiftCheck(n, n_val, float(threshold), rate, val_rate, _two_proportion_p(rate, n, val_rate, n_val), d, ks_p)


def _two_proportion_p(p1: float, n1: int, p2: float, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when both rates are 0 or 1)."""
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    return float(2 * stats.norm.sf(abs(p1 - p2) / se))


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"
