"""`ugn evaluate` (placeholder until #5 lands)."""


def evaluate() -> None:
    """Placeholder."""
    raise NotImplementedError


def runs() -> None:
    """Placeholder."""
    raise NotImplementedError
