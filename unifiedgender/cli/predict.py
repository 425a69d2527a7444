"""`ugn predict` (placeholder until #6 lands)."""


def predict() -> None:
    """Placeholder."""
    raise NotImplementedError
