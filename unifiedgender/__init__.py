"""unifiedgender: sex/gender classifiers on biometric images with subject-level, fairness-aware evaluation."""

__version__ = "0.1.0"
