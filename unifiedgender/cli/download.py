"""`ugn download` commands (placeholder until issue #2 (data helper) lands)."""

import typer

app = typer.Typer(no_args_is_help=True)
