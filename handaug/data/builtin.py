"""handaug's own dataset readers, registered through the dataset hook like any plugin's."""

from __future__ import annotations

from typing import Any

from handaug.data.folder import ImageFolder
from handaug.hookspecs import hookimpl


def procedural_hands(root: str | None = None, **kwargs: Any) -> Any:
    """Factory of :class:`handaug.data.procedural.ProceduralHands` (it reads no files: ``root`` must be empty)."""
    if root:
        raise ValueError(f"the procedural dataset renders its images and takes no root folder, got root={root!r}")
    from handaug.data.procedural import ProceduralHands

    return ProceduralHands(**kwargs)


@hookimpl
def handaug_register_datasets(registry) -> None:  # noqa: ANN001 - the hookspec types it
    registry.add("folder", ImageFolder)
    registry.add("procedural", procedural_hands)
