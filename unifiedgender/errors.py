"""User-facing errors: one line naming the file/column/value and the fix."""


class UserError(Exception):
    """An error caused by user input. The CLI prints its message on one line and exits with code 2."""

    exit_code = 2
