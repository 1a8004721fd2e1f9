"""Progress display for experiments: one rich bar for the stages, one for the current stage.

The current stage's bar pulses (with elapsed time) until the library function it calls reports
steps, then fills. Each finished stage leaves one log line (computed or reused, and its time),
so a run's output read afterwards says what was recomputed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.markup import escape

from obliviate.experiment.stages import NullReporter, Reporter, Stage


class RichReporter:
    """Rich progress bars on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._overall: Any = None
        self._current: Any = None

    @contextmanager
    def live(self) -> Iterator[None]:
        with self.progress:
            yield

    def stage_begin(self, stage: Stage, index: int, total: int, cached: bool) -> None:
        if self._overall is None:
            self._overall = self.progress.add_task("[bold]experiment[/bold]", total=total)
        self.progress.update(self._overall, completed=index, total=total)
        if self._current is not None:
            self.progress.remove_task(self._current)
        name = escape(stage.name)  # labels and messages are the user's text, not markup
        self._current = None if cached else self.progress.add_task(f"  {name}", total=None)

    def stage_end(self, stage: Stage, wall_s: float, cached: bool) -> None:
        if self._current is not None:
            self.progress.remove_task(self._current)
            self._current = None
        if self._overall is not None:
            self.progress.advance(self._overall)
        how = (
            f"[dim]reused[/dim] (computed earlier in {wall_s:.1f} s)"
            if cached
            else f"done in {wall_s:.1f} s"
        )
        self.console.print(f"  [green]✓[/green] {escape(stage.name)}: {how}", highlight=False)

    def message(self, text: str) -> None:
        self.console.print(f"    [dim]{escape(text)}[/dim]", highlight=False, soft_wrap=True)

    def advance(self, done: float, total: float | None, what: str = "") -> None:
        if self._current is not None:
            self.progress.update(self._current, completed=done, total=total)


def make_reporter(enabled: bool) -> Reporter:
    return RichReporter() if enabled else NullReporter()
