"""`ugn train` (placeholder until #4 lands)."""


def train() -> None:
    """Placeholder."""
    raise NotImplementedError
