"""Lightning training checkpoints (``last.ckpt``): recognised by their first bytes, never unpickled.

``handaug-train`` writes two kinds of files. ``<run>/export/`` is the generator checkpoint
(safetensors + JSON) that ``SynthToReal``, ``handaug-translate``, ``handaug-eval`` and
``handaug-export`` read; ``<run>/checkpoints/last.ckpt`` is Lightning's checkpoint to resume
training from: torch's zip of pickles, holding both generators, both discriminators, optimiser
states and image pools. handaug never unpickles a file it is asked to *load a generator* from,
so :func:`training_checkpoint_message` recognises a ``.ckpt`` by its first bytes only and says
what to do instead.

:func:`handaug.export.export_training_checkpoint` turns a ``.ckpt`` of handaug-train into a
generator checkpoint (see :mod:`handaug.export.training_checkpoint`).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

ZIP_MAGIC = b"PK\x03\x04"
#: Pickle protocols 2 to 5 start with this opcode (torch.save's pre-1.6 format, plain pickles).
PICKLE_PROTO = b"\x80"

EXPORT_HINT = (
    "handaug-train writes the generator checkpoint to RUN/export/ when training ends; to export the "
    "generator of a training checkpoint, run `handaug-export RUN/checkpoints/last.ckpt --format handaug --out DIR`"
)


def first_zip_entry(head: bytes) -> str | None:
    """Name of the first member from a zip's first local file header (no decompression, no unpickling)."""
    if len(head) < 30 or not head.startswith(ZIP_MAGIC):
        return None
    name_length = int.from_bytes(head[26:28], "little")
    return head[30 : 30 + name_length].decode("utf-8", "replace")


def training_checkpoint_message(path: str | os.PathLike[str]) -> str | None:
    """A message saying what ``path`` is if it is a torch zip or pickle file, else ``None``.

    Only the first bytes are read: a torch zip (``torch.save``, Lightning ``.ckpt``) starts with
    the zip magic and a first member ``<archive>/data.pkl``.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(512)
    first = first_zip_entry(head)
    if first is not None:
        if first.endswith("data.pkl"):
            what = "a PyTorch zip of pickles (a Lightning training checkpoint such as last.ckpt, or a torch.save file)"
        else:
            what = "a zip archive"
    elif head.startswith(PICKLE_PROTO):
        what = "a Python pickle (an old torch.save file?)"
    else:
        return None
    shown_path = shlex.quote(str(path)) if str(path).isprintable() else "CKPT"
    command = f"handaug-export {shown_path} --format handaug --out DIR"
    return (
        f"checkpoint {str(path)!r} is {what}, not a handaug generator checkpoint (a directory with "
        f"generator.safetensors + config.json, or a .safetensors file); handaug never unpickles it. "
        f"handaug-train writes the generator checkpoint to RUN/export/ when training ends; if this is "
        f"handaug-train's training checkpoint, export its generator with `{command}`"
    )
