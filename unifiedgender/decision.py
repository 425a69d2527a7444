"""The decision a model ships with: its temperature, its thresholds on P(male) and where they came from.

Training fits a temperature on the validation logits of the kept (best) epoch and, on the calibrated
validation probabilities, one threshold per policy in THRESHOLD_POLICIES; `policy` names the one used by
default (DEFAULT_THRESHOLD_POLICY unless `ugn train --threshold-policy` says otherwise). A summary of the
validation scores travels with it for the shift check. It is stored as plain data under "decision" in a
checkpoint and as the JSON `ugn.decision` in ONNX metadata. A model stored without one (older checkpoints
and exports) gets `Decision()`: temperature 1 and threshold 0.5, i.e. what ugn did before.

Standard library only: the CLI reads the policy names for its --help.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from unifiedgender.errors import UserError

DECISION_FORMAT = "ugn-decision/1"
# "0.5": 0.5 on calibrated P(male) (temperature scaling keeps the 0.5 decision of the raw model);
# "youden": maximises TPR - FPR on validation; "eer": where FPR = FNR on validation.
THRESHOLD_POLICIES = ("0.5", "youden", "eer")
DEFAULT_THRESHOLD_POLICY = "0.5"  # the one setting to switch the default (docs/evaluation.md#threshold-policies)
GIVEN = "given"  # the stored policy of an export made with --threshold
UNCERTAIN_MARGIN = 0.1  # |P(male) - threshold| below this: the web page marks the result as uncertain


@dataclass(frozen=True)
class Threshold:
    """One decision threshold on calibrated P(male): its value, how it was chosen and on which data."""

    value: float
    method: str  # a policy name, "fixed" (given) or "youden"/"eer" chosen on a table at evaluation time
    chosen_on: str  # which data, or "given" / "default"

    def describe(self) -> str:
        """E.g. '0.4790 (youden on validation data runs/x/val.csv, ...)' or '0.4000 (given with --threshold)'."""
        if self.method == "fixed":
            return f"{self.value:.4f} ({'given with --threshold' if self.chosen_on == 'given' else self.chosen_on})"
        if self.method == "0.5":
            return f"{self.value:.4f} (policy 0.5 on P(male) calibrated on {self.chosen_on})"
        return f"{self.value:.4f} ({self.method} on {self.chosen_on})"

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "method": self.method, "chosen_on": self.chosen_on}


@dataclass(frozen=True)
class Decision:
    """Temperature, thresholds per policy (on calibrated P(male)), the default policy and the validation scores."""

    temperature: float = 1.0
    policy: str = "0.5"
    thresholds: Mapping[str, float] = field(default_factory=lambda: {"0.5": 0.5})
    chosen_on: str = ""  # e.g. "validation data runs/x/val.csv (best epoch 3, 120 images)"
    ece: Mapping[str, float] = field(default_factory=dict)  # {"uncalibrated": ..., "calibrated": ...}
    scores: Mapping[str, Any] | None = None  # {"n": images, "quantiles": [...]} of calibrated validation P(male)

    @property
    def stored(self) -> bool:
        """False for a model saved without a decision (temperature 1, threshold 0.5, as before)."""
        return bool(self.chosen_on)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "checkpoint") -> Decision:
        """Read what `as_dict` wrote; None (nothing stored) gives the default decision."""
        if data is None:
            return cls()
        if data.get("format") != DECISION_FORMAT:
            raise UserError(f"{where}: unknown decision format {data.get('format')!r} (expected {DECISION_FORMAT!r}); "
                            "update unifiedgender or re-export the model")
        temperature = float(data["temperature"])
        if not (math.isfinite(temperature) and temperature > 0):
            raise UserError(f"{where}: stored temperature {temperature} is not a positive number; retrain or re-export")
        thresholds = {str(k): float(v) for k, v in dict(data["thresholds"]).items()}
        policy = str(data["policy"])
        if policy not in thresholds:
            raise UserError(f"{where}: stored policy '{policy}' has no stored threshold; retrain or re-export")
        return cls(temperature, policy, thresholds, str(data["chosen_on"]), dict(data.get("ece") or {}),
                   dict(data["scores"]) if data.get("scores") else None)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint (torch.load(weights_only=True)) and JSON for ONNX metadata."""
        return {
            "format": DECISION_FORMAT, "temperature": float(self.temperature), "policy": self.policy,
            "thresholds": {k: float(v) for k, v in self.thresholds.items()}, "chosen_on": self.chosen_on,
            "ece": {k: float(v) for k, v in self.ece.items()},
            "scores": None if self.scores is None else {"n": int(self.scores["n"]),
                                                        "quantiles": [float(q) for q in self.scores["quantiles"]]},
        }

    def threshold(self, value: float | None = None, policy: str | None = None) -> Threshold:
        """The threshold to use: `value` when given, else the stored one of `policy` (default: the stored policy)."""
        if value is not None:
            return Threshold(check_threshold(value), "fixed", "given")
        if policy is not None:
            check_policy(policy)
        if not self.stored:
            if policy not in (None, "0.5"):
                raise UserError(f"--threshold-policy {policy}: this model stores no thresholds (trained before they were "
                                "stored); pass --threshold, or --threshold-from a validation table with `ugn evaluate`")
            return Threshold(0.5, "fixed", "default 0.5: the model stores no threshold")
        policy = policy or self.policy
        if policy == GIVEN and policy in self.thresholds:
            return Threshold(float(self.thresholds[GIVEN]), "fixed", "given with --threshold at export")
        if policy not in self.thresholds:
            raise UserError(f"--threshold-policy {policy}: not stored with this model (it has "
                            f"{', '.join(self.thresholds)}); pass --threshold instead")
        return Threshold(float(self.thresholds[policy]), policy, self.chosen_on)

    def with_threshold(self, threshold: Threshold) -> Decision:
        """This decision with `threshold` as its default (what `ugn export --threshold/--threshold-policy` stores)."""
        if threshold.method in self.thresholds and self.thresholds[threshold.method] == threshold.value:
            return Decision(self.temperature, threshold.method, self.thresholds, self.chosen_on, self.ece, self.scores)
        thresholds = {**self.thresholds, GIVEN: threshold.value}
        chosen_on = self.chosen_on or "no validation data (temperature 1)"
        return Decision(self.temperature, GIVEN, thresholds, chosen_on, self.ece, self.scores)

    def describe(self) -> str:
        """One line for logs: temperature, ECE before/after and the thresholds."""
        if not self.stored:
            return "no stored calibration or threshold (temperature 1, threshold 0.5)"
        ece = (f"; validation ECE {self.ece['uncalibrated']:.4f} -> {self.ece['calibrated']:.4f}"
               if {"uncalibrated", "calibrated"} <= set(self.ece) else "")
        others = ", ".join(f"{k} {v:.4f}" for k, v in self.thresholds.items() if k != self.policy)
        return (f"temperature {self.temperature:.3f}{ece}; threshold {self.thresholds[self.policy]:.4f} "
                f"(policy {self.policy}{'; ' + others if others else ''}) on {self.chosen_on}")


def check_policy(policy: str) -> str:
    """A known threshold policy name."""
    if policy not in THRESHOLD_POLICIES:
        raise UserError(f"unknown threshold policy '{policy}'; use one of {', '.join(THRESHOLD_POLICIES)}")
    return policy


def check_threshold(threshold: float) -> float:
    """A fixed threshold must lie in (0, 1]."""
    if not 0.0 < threshold <= 1.0:
        raise UserError(f"--threshold {threshold}: must be in (0, 1]; 0.5 is the default")
    return float(threshold)


def calibrated_probs(logits: Any, temperature: float = 1.0) -> Any:
    """sigmoid(logits / temperature) as a float64 NumPy array (temperature 1: the raw probabilities)."""
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64) / temperature))


def near_threshold(prob_male: float, threshold: float, margin: float = UNCERTAIN_MARGIN) -> bool:
    """True when P(male) lies within `margin` of the threshold: the label could flip with a small change."""
    return abs(prob_male - threshold) < margin
