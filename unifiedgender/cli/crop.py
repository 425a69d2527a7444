"""`ugn crop` (placeholder until #7 lands)."""


def crop() -> None:
    """Placeholder."""
    raise NotImplementedError
