"""`ugn demo` (placeholder until #8 lands)."""


def demo() -> None:
    """Placeholder."""
    raise NotImplementedError
