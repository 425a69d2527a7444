"""Progress output: plain lines without a TTY, a rich bar with loss, images/s and ETA on one."""

import io

from unifiedgender.training.progress import Reporter


def test_plain_lines_without_a_tty(tmp_path):
    stream = io.StringIO()
    reporter = Reporter(stream=stream, tty=False, log_every_steps=2)
    reporter.log_file = tmp_path / "train.log"
    reporter.start_epoch(0, 3, 4)
    for step in range(1, 5):
        reporter.step(step, 4, 0.5, 123.0)
    reporter.end_epoch({"train_loss": 0.5, "val_balanced_acc": 0.75})
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "epoch 1/3 step 2/4 loss 0.5000 123.0 img/s", "epoch 1/3 step 4/4 loss 0.5000 123.0 img/s",
        "epoch 1/3 train_loss 0.5 val_balanced_acc 0.75"]
    assert "\x1b[" not in stream.getvalue()
    assert (tmp_path / "train.log").read_text().splitlines() == lines


def test_rich_bar_on_a_tty():
    stream = io.StringIO()
    reporter = Reporter(stream=stream, tty=True)
    reporter.start_epoch(1, 3, 10)
    reporter.step(5, 10, 0.25, 456.0)
    reporter._progress.refresh()
    reporter.end_epoch({"train_loss": 0.25})
    text = stream.getvalue()
    assert "epoch 2/3" in text and "loss 0.2500" in text and "456 img/s" in text and "ETA" in text


def test_silent_on_other_ranks():
    stream = io.StringIO()
    reporter = Reporter(enabled=False, stream=stream, tty=False, log_every_steps=1)
    reporter.start_epoch(0, 1, 1)
    reporter.step(1, 1, 0.1, 1.0)
    reporter.end_epoch({})
    assert stream.getvalue() == ""
