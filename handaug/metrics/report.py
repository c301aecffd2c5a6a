"""Result tables (Markdown for reading, CSV for spreadsheets) and atomic file writes.

>>> t = Table("FID/KID", ["method", "FID", "KID"], [["msH-GAN4", "63.297", "0.0479 ± 0.0067"]])
>>> print(t.to_markdown())  # doctest: +NORMALIZE_WHITESPACE
### FID/KID
<BLANKLINE>
| method | FID | KID |
| --- | --- | --- |
| msH-GAN4 | 63.297 | 0.0479 ± 0.0067 |
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handaug.atomic_files import write_bytes_atomically


def save_figure(figure: Any, path: str | os.PathLike[str], dpi: int = 150) -> Path:
    """Save a matplotlib ``figure`` as PNG atomically and close it."""
    import matplotlib.pyplot as plt  # deferred: matplotlib is the [eval] extra

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return write_bytes_atomically(path, buffer.getvalue())


def file_slug(label: str) -> str:
    """``label`` as part of a file or folder name: each run of characters other than ASCII letters,
    digits, ``.``, ``_`` and ``-`` becomes one ``_``, and leading and trailing ``_`` and ``.`` are
    dropped (so no hidden file, no ``..``, no trailing dot); ``"checkpoint"`` if nothing is left.

    >>> file_slug("runs/msH-GAN 6 (final).")
    'runs_msH-GAN_6_final'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_.") or "checkpoint"


def format_number(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals; ``"-"`` for ``None`` and ``"nan"`` for NaN."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.{digits}f}"


def format_mean_std(mean: float, std: float | None, digits: int = 4) -> str:
    """``"mean ± std"`` (the paper's KID notation), or ``"mean"`` when ``std`` is ``None``."""
    if std is None:
        return format_number(mean, digits)
    return f"{format_number(mean, digits)} ± {format_number(std, digits)}"


@dataclass
class Table:
    """A titled table of strings: rendered as Markdown (:meth:`to_markdown`) or CSV (:meth:`to_csv`).

    Args:
        title: heading printed above the Markdown table.
        columns: column names.
        rows: one list of cell values per row (converted with ``str``), each as long as ``columns``.
        notes: sentences printed under the Markdown table (not in the CSV).
    """

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"rows[{i}] has {len(row)} cells, expected {len(self.columns)} (columns {self.columns})")

    def add_row(self, row: list[Any]) -> None:
        if len(row) != len(self.columns):
            raise ValueError(f"row has {len(row)} cells, expected {len(self.columns)} (columns {self.columns})")
        self.rows.append(list(row))

    def to_markdown(self) -> str:
        def cell(value: Any) -> str:
            return str(value).replace("|", "\\|").replace("\n", " ")

        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(cell(c) for c in self.columns) + " |")
        lines.append("| " + " | ".join("---" for _ in self.columns) + " |")
        lines.extend("| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows)
        if self.notes:
            lines.append("")
            lines.extend(self.notes)
        return "\n".join(lines)

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([[str(v) for v in row] for row in self.rows])
        return buffer.getvalue()

    def write(self, stem: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``<stem>.md`` and ``<stem>.csv`` atomically; returns both paths."""
        stem = Path(stem)
        md = write_bytes_atomically(stem.with_name(stem.name + ".md"), (self.to_markdown() + "\n").encode())
        csv_path = write_bytes_atomically(stem.with_name(stem.name + ".csv"), self.to_csv().encode())
        return md, csv_path
