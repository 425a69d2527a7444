"""Help text and option spellings: defaults shown, clean metavars, one --output, one set of --device values."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from unifiedgender.cli.app import app
from unifiedgender.cli.options import DEVICE_HELP

COMMANDS = (["train"], ["bench", "train"], ["bench", "predict"], ["evaluate"], ["runs"], ["predict"], ["export"],
            ["serve"], ["crop"], ["demo"], ["data", "import"], ["data", "subset"], ["data", "split"], ["data", "info"],
            ["download", "dataset"])
OUTPUT_COMMANDS = (["train"], ["evaluate"], ["predict"], ["export"], ["crop"], ["demo"], ["data", "import"],
                   ["data", "subset"], ["data", "split"])
DEVICE_COMMANDS = (["train"], ["bench", "train"], ["evaluate"], ["predict"], ["serve"], ["crop"])


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_no_typed_metavars(command):
    text = _help(*command)
    assert not re.search(r"(?<=\s)<(bool|int|float|str|path|list\[str\])>(?=\s)", text.split("Options")[-1]), text


def test_train_help_shows_every_written_default():
    text = _help("train")
    for default in ("Epochs [default: 10].", "Learning rate [default: 1e-4].", "Weight decay [default: 0.01].",
                    "[default: runs/<tag>]"):
        assert default in text, default
    assert not re.search(r"\w \.", text)  # the bug: "Epochs ." with the default swallowed by rich markup
    assert "Batch size [default: 256 on GPU, 16 on CPU]." in _help("bench", "train")


@pytest.mark.parametrize("command", OUTPUT_COMMANDS, ids=" ".join)
def test_one_output_spelling_in_help(command):
    text = _help(*command)
    assert "--output" in text and "-o" in text
    assert not re.search(r"--out(dir)?\b(?!put)", text), text


@pytest.mark.parametrize("command", DEVICE_COMMANDS, ids=" ".join)
def test_one_set_of_device_values(command):
    assert DEVICE_HELP[:-1] in _help(*command)  # train adds its [default: auto]


def test_old_output_spellings_still_work(tmp_path):
    from unifiedgender.sample import sample_manifest_path

    runner = CliRunner()
    old = runner.invoke(app, ["data", "split", str(sample_manifest_path()), "--outdir", str(tmp_path / "old")])
    assert old.exit_code == 0, old.output
    assert (tmp_path / "old" / "train.csv").is_file()
    both = runner.invoke(app, ["data", "split", str(sample_manifest_path()), "--outdir", str(tmp_path / "a"),
                               "--output", str(tmp_path / "b")])
    assert "old spelling of --output" in str(both.exception)
