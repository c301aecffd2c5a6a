"""Data sources as ``handaug-train`` and ``handaug-eval`` name them: parsed into a registered dataset and its folder.

A source is ``"procedural"`` (or any registered dataset that reads no files), ``"NAME:ROOT"``
(``NAME`` a registered dataset reader, ``ROOT`` its folder) or a plain folder path (read by
``"folder"``). Parsing needs only the dataset registry (no Lightning), so the metrics and the
Lightning data module both use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from handaug.registry import get_registry

__all__ = ["SourceSpec", "parse_source"]


@dataclass(frozen=True)
class SourceSpec:
    """A parsed data source: a registered dataset name and the folder it reads (if any)."""

    name: str
    root: str | None

    def __str__(self) -> str:
        return self.name if self.root is None else f"{self.name}:{self.root}"


def parse_source(spec: str, argument: str) -> SourceSpec:
    """Parse ``"procedural"``, ``"NAME:ROOT"`` (``NAME`` a registered dataset) or a plain folder path.

    >>> parse_source("/data/real", "real")
    SourceSpec(name='folder', root='/data/real')
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{argument} must be 'procedural', 'NAME:ROOT' or a folder path, got {spec!r}")
    datasets = get_registry("dataset")
    match = re.fullmatch(r"([A-Za-z_][\w.-]*):(.*)", spec)
    # "C:\\data" is a Windows path, not a dataset called "C".
    if match and len(match.group(1)) > 1:
        name, root = match.group(1), match.group(2) or None
        if name not in datasets:
            datasets.get(name)  # raises, listing the known dataset names
        return SourceSpec(name, root)
    if spec in datasets:
        return SourceSpec(spec, None)
    return SourceSpec("folder", spec)
