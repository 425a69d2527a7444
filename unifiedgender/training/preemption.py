"""Stop requests from the outside: SIGTERM (pre-emption, `scancel`, the end of a Slurm time limit) and SIGUSR1
(`sbatch --signal=B:USR1@120`) set a flag; the trainer saves last.pt at the next step and stops."""

from __future__ import annotations

import signal
import threading
from types import FrameType

STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


class StopSignals:
    """Context manager: while active, the stop signals are remembered in `received` instead of ending the process."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
            for name in STOP_SIGNALS:
                number = getattr(signal, name, None)
                if number is not None:
                    self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signal.Signals(signum).name
