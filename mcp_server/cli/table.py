"""The one table renderer of the command line (`models`, `keys list`, `usage`): aligned columns, plain text."""

from __future__ import annotations

from collections.abc import Sequence


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    total: Sequence[object] | None = None,
    right_from: int | None = None,
) -> str:
    """A header, a rule, the rows, and (given `total`) a rule and a total row.

    Columns from index `right_from` on are right-aligned (numbers); the others are left-aligned and padded.
    """
    cells = [[str(c) for c in row] for row in [headers, *rows, *([total] if total is not None else [])]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    rule = ["-" * width for width in widths]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if right_from is not None and i >= right_from else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )

    body, last = (cells[1:-1], cells[-1]) if total is not None else (cells[1:], None)
    lines = [line(cells[0]), line(rule), *(line(row) for row in body)]
    if last is not None:
        lines += [line(rule), line(last)]
    return "\n".join(lines)
