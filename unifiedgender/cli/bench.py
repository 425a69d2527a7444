"""`ugn bench` commands (placeholder until issues #4/#6 lands)."""

import typer

app = typer.Typer(no_args_is_help=True)
