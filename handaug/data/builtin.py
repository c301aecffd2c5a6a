"""handaug's own dataset readers, registered through the dataset hook like any plugin's."""

from __future__ import annotations

from typing import Any

from handaug.data.folder import ImageFolder
from handaug.data.procedural import ProceduralHands
from handaug.data.readers import RHD, FreiHAND, GANeratedHands, RealHands, SynthHands
from handaug.hookspecs import hookimpl

#: Registered dataset name → reader class (each built as ``Reader(root, **options)``).
READERS: dict[str, type] = {
    "synthhands": SynthHands,
    "realhands": RealHands,
    "ganerated": GANeratedHands,
    "freihand": FreiHAND,
    "rhd": RHD,
}


def procedural_hands(root: str | None = None, **kwargs: Any) -> Any:
    """Factory of :class:`handaug.data.procedural.ProceduralHands` (it reads no files: ``root`` must be empty)."""
    if root:
        raise ValueError(f"the procedural dataset renders its images and takes no root folder, got root={root!r}")
    return ProceduralHands(**kwargs)


@hookimpl
def handaug_register_datasets(registry) -> None:  # noqa: ANN001 - the hookspec types it
    registry.add("folder", ImageFolder)
    registry.add("procedural", procedural_hands)
    for name, reader in READERS.items():
        registry.add(name, reader)
