"""A progress bar on stderr for long commands: redrawn in place on a terminal, a line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

# Without a terminal (logs, CI), one line per this many seconds is enough to see that work goes on.
PLAIN_EVERY_S = 5.0
BAR_WIDTH = 30


class ProgressBar:
    """``update(phase, done, total)`` as work advances; ``close()`` ends the line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._out = stream or sys.stderr
        self._tty = self._out.isatty()
        self._started = time.monotonic()
        self._last_plain = 0.0
        self._drawn = False

    def update(self, phase: str, done: int, total: int) -> None:
        """Show ``done`` of ``total`` for ``phase``."""
        elapsed = time.monotonic() - self._started
        fraction = done / total if total else 1.0
        text = f"{phase:<10} {done:>7,}/{total:,} {fraction:6.1%}  {elapsed:5.1f} s"
        if self._tty:
            filled = int(BAR_WIDTH * fraction)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self._out.write(f"\r[{bar}] {text}")
            self._out.flush()
            self._drawn = True
        elif done == total or elapsed - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = elapsed
            self._out.write(text + "\n")
            self._out.flush()

    def close(self) -> None:
        """Finish the bar's line."""
        if self._drawn:
            self._out.write("\n")
            self._out.flush()
            self._drawn = False
