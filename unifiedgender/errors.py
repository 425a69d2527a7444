"""User-facing errors: one line naming the file/column/value and the fix."""


class UserError(Exception):
    """An error caused by user input. The CLI prints its message on one line and exits with code 2."""

    exit_code = 2


class Preempted(Exception):
    """Training stopped on SIGTERM/SIGUSR1 after saving last.pt. The CLI prints the message and exits with 75
    (EX_TEMPFAIL: try again), which the Slurm scripts answer with a requeue; `--resume auto` then continues."""

    exit_code = 75
