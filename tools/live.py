"""The live view the demo and the load test share: a rich table refreshed in place on a terminal,
one plain `key=value` line every few samples otherwise (CI logs)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.live import Live
from rich.table import Table

PLAIN_LINE_EVERY = 5


class LiveView:
    def __init__(self, console: Console, title: str, headers: Sequence[str]) -> None:
        self.console = console
        self.title = title
        self.headers = list(headers)
        self.live: Live | None = None
        self.samples = 0

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self.live = Live(self._table(None), console=self.console, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def _table(self, cells: Sequence[str] | None) -> Table:
        return self._rows_table([cells] if cells is not None else [])

    def _rows_table(self, rows: Sequence[Sequence[str]]) -> Table:
        table = Table(title=self.title)
        for header in self.headers:
            table.add_column(header, justify="right")
        for cells in rows:
            table.add_row(*cells)
        return table

    def show(self, cells: Sequence[str]) -> None:
        self.show_rows([cells])

    def show_rows(self, rows: Sequence[Sequence[str]]) -> None:
        """One row per thing watched (the chain demo: one per workflow)."""
        if self.live is not None:
            self.live.update(self._rows_table(rows))
            return
        self.samples += 1
        if self.samples % PLAIN_LINE_EVERY == 1:
            for cells in rows:
                line = "  ".join(
                    f"{h.replace(' ', '_')}={c}" for h, c in zip(self.headers, cells, strict=True)
                )
                self.console.print(line, highlight=False, soft_wrap=True)
