"""Stopping a training loop cleanly on Ctrl-C or JupyterLab's interrupt button.

Inside :class:`StopRequest`, the first SIGINT only sets a flag: the loop finishes the step it is
in, saves its checkpoint at that step boundary (where resuming is exact) and raises
:class:`TrainingInterrupted`, whose message is one short paragraph in a notebook rather than a
long traceback. A second SIGINT interrupts at once, as usual.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped at a step boundary on request; says where the saved state is."""

    def __init__(self, step: int, steps: int, checkpoint: Path | None):
        self.step, self.steps, self.checkpoint = step, steps, checkpoint
        if checkpoint is None:
            how = "nothing was saved (this training has no checkpoint file)"
        else:
            how = f"training state saved to {checkpoint}: run the cell again to resume from step {step}"
        super().__init__(f"interrupted at step {step} of {steps}; {how}")

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of the traceback."""
        return [f"TrainingInterrupted: {self}"]


class StopRequest:
    """Context manager: ``requested`` turns True on the first SIGINT (when enabled, in the main
    thread; otherwise a SIGINT raises KeyboardInterrupt as usual)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:  # second interrupt: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
