"""Progress output: plain lines without a TTY, a rich bar with loss, images/s and ETA on one."""

import io

from unifiedgender.training.progress import Reporter


def test_plain_lines_without_a_tty():
    stream = io.StringIO()
    reporter = Reporter(stream=stream, tty=False, log_every_steps=2)
    reporter.start_epoch(0, 3, 4)
    returned = [reporter.step(step, 4, 0.5, 123.0) for step in range(1, 5)]
    returned.append(reporter.end_epoch({"train_loss": 0.5, "val_balanced_acc": 0.75}))
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "epoch 1/3 step 2/4 loss 0.5000 123.0 img/s", "epoch 1/3 step 4/4 loss 0.5000 123.0 img/s",
        "epoch 1/3 train_loss 0.5 val_balanced_acc 0.75"]
    assert "\x1b[" not in stream.getvalue()
    assert [line for line in returned if line is not None] == lines  # what the trainer appends to train.log


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
    assert reporter.end_epoch({}) is None and reporter.log("x") is None
    assert stream.getvalue() == ""
