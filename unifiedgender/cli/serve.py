"""`ugn serve` (placeholder until #6 lands)."""


def serve() -> None:
    """Placeholder."""
    raise NotImplementedError
