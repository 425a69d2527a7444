"""`ugn export` (placeholder until #6 lands)."""


def export() -> None:
    """Placeholder."""
    raise NotImplementedError
