"""Progress of long jobs: a live bar on a terminal, a plain line now and then in a log file."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

#: Seconds between plain progress lines when the output is not a terminal.
LINE_EVERY_S = 60.0


def fmt_duration(seconds: float) -> str:
    """Seconds as "1h02m03s", "2m03s" or "3s"."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    return f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Counts work done towards ``total``.

    On a terminal it shows a tqdm bar; otherwise (output captured to a file) it prints one
    plain line every ``every_s`` seconds and one at the end, so a log holds a few lines
    instead of thousands of carriage returns. ``enabled=False`` prints nothing.
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        desc: str = "",
        unit: str = "ep",
        enabled: bool = True,
        stream: IO[str] | None = None,
        every_s: float = LINE_EVERY_S,
    ) -> None:
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self.postfix: dict[str, Any] = {}
        self._start_n = initial
        self._t0 = time.perf_counter()
        self._last_line = self._t0
        self._bar = None
        if enabled and _is_terminal(self.stream):
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=desc or None,
                unit=unit,
                smoothing=0.05,
                file=self.stream,
            )

    def update(self, n: int) -> None:
        """Record ``n`` more units of work."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and time.perf_counter() - self._last_line >= self.every_s:
            self._line()

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the count (e.g. the latest trap rate)."""
        self.postfix = values
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def _line(self) -> None:
        now = time.perf_counter()
        self._last_line = now
        elapsed = now - self._t0
        done = self.n - self._start_n
        pct = 100.0 * self.n / self.total if self.total else 100.0
        parts = [f"{self.desc + ': ' if self.desc else ''}{self.n}/{self.total} {self.unit}"]
        parts.append(f"({pct:.0f}%)")
        parts.append(f"{fmt_duration(elapsed)} elapsed")
        if 0 < done and self.n < self.total:
            parts.append(f"~{fmt_duration(elapsed / done * (self.total - self.n))} left")
        if self.postfix:
            parts.append(" ".join(f"{k}={v}" for k, v in self.postfix.items()))
        print(", ".join(parts[:1]) + " " + ", ".join(parts[1:]), file=self.stream, flush=True)

    def close(self) -> None:
        """End the bar (or print the last plain line)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.n != self._start_n:
            self._line()
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
