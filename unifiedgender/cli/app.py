"""The `ugn` Typer application. Importing this module must stay cheap: no torch, numpy or pandas here."""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from unifiedgender import __version__
from unifiedgender.cli import bench, convert, crop, data, demo, download, evaluate, export, fuse, predict, serve, train
from unifiedgender.errors import Preempted, UserError

HELP_NAMES = ("-h", "--help")
TYPE_NAMES = {int: "INTEGER", float: "FLOAT", str: "TEXT"}


def tidy_help(command) -> None:
    """Clean help for `command` and everything below it: flags show no `<bool>`, values show INTEGER, FLOAT, TEXT
    or PATH instead of `<int>`, `<list[str]>` ..., and a written-out "[default: X]" (the real default of an option
    whose value None means "from the config") is escaped so that rich markup does not swallow it."""
    from typing import get_args

    for param in getattr(command, "params", ()):
        if param.help and "[default: " in param.help and "\\[default: " not in param.help:
            param.help = param.help.replace("[default: ", "\\[default: ")
        descriptor = getattr(param, "type_descriptor", None)  # newer typer; older ones print click's metavars
        if descriptor is None or param.metavar is not None:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()
            continue
        element = (get_args(descriptor.annotation) or (descriptor.annotation,))[0] if descriptor.is_list else descriptor.annotation
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif descriptor.is_path:
            param.metavar = "PATH"
        elif not descriptor.is_choice and element in TYPE_NAMES:
            param.metavar = TYPE_NAMES[element]
    if getattr(command, "_help_option", False) is None:  # typer builds --help lazily; build it now to tidy it
        help_option = command.get_help_option(command.context_class(command, help_option_names=list(HELP_NAMES)))
        if help_option is not None:
            help_option.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)


class UgnGroup(TyperGroup):
    """The root command group; tidies the help of every command once it is built."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        tidy_help(self)

    def format_help(self, ctx, formatter) -> None:
        tidy_help(self)  # typer adds the completion options after __init__
        super().format_help(ctx, formatter)


app = typer.Typer(
    name="ugn",
    cls=UgnGroup,
    help="Train, evaluate and use sex/gender classifiers on hands, faces, fingerprints and finger flutings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": list(HELP_NAMES)},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ugn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Sex/gender classification on biometric images, with subject-level evaluation and fairness breakdowns."""


app.command("demo", help="Run the whole pipeline on the bundled sample (import, split, train, evaluate, predict).")(demo.demo)
app.add_typer(data.app, name="data", help="Import native datasets into manifests, inspect them, split them by subject.")
app.add_typer(download.app, name="download", help="Fetch the UnifiedGenderNet dataset, checkpoints and metrics.")
app.command("train", help="Train a model from a run tag on train/val manifests.")(train.train)
app.command("evaluate", help="Evaluate a checkpoint on a manifest: metrics, CIs, fairness, report.")(evaluate.evaluate_command)
app.command("runs", help="List the best runs in the run registry.")(evaluate.runs)
app.command("fuse", help="Fingerprints: ridge-feature models and per-person fusion of scores by finger position.")(fuse.fuse)
app.command("predict", help="Predict files, folders, globs or a manifest with a checkpoint.")(predict.predict)
app.command("export", help="Export a checkpoint to ONNX or TorchScript.")(export.export)
app.command("convert", help="Convert a published UnifiedGenderNet UMCC/MAG checkpoint to a ugn checkpoint.")(convert.convert)
app.command("serve", help="Serve a web page and JSON API for a checkpoint.")(serve.serve)
app.command("crop", help="Crop images to the object found by SAM2 point prompts.")(crop.crop)
app.add_typer(bench.app, name="bench", help="Benchmarks: training data path and prediction throughput.")


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except Preempted as exc:
        typer.echo(str(exc), err=True)
        sys.exit(exc.exit_code)
    except UserError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here with standalone_mode=False
        import click

        try:  # newer typer vendors click: its usage errors derive from TyperException, not click's class
            from typer.exceptions import TyperException as UsageErrors
        except ImportError:
            UsageErrors = click.ClickException
        if isinstance(exc, (click.ClickException, UsageErrors)) and hasattr(exc, "show"):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)
