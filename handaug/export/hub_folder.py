"""A generator checkpoint as a folder to upload as a Hugging Face Hub model repository, with its model card.

:func:`export_hub_folder` writes the checkpoint in the directory layout (``generator.safetensors``
+ ``config.json``) and a model card ``README.md`` (:func:`model_card`: YAML front matter, usage,
and the config's network, training and measures as Markdown tables, every value from the config
escaped). The folder is what ``hf://ORG/REPO`` names load (see :mod:`handaug.hub`).
PyYAML (the ``[hub]`` extra) is needed for the model card only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from handaug.atomic_files import write_bytes_atomically
from handaug.checkpoint import read_checkpoint
from handaug.checkpoint_config import CONFIG_FILE, WEIGHTS_FILE
from handaug.hub import HF_SCHEME, parse_hub_name
from handaug.optional import require

#: The model card's file name in a Hub repository.
MODEL_CARD_FILE = "README.md"
#: Tags of every handaug model card (the Hub's search facets).
HUB_TAGS: tuple[str, ...] = (
    "handaug", "image-to-image", "gan", "cyclegan", "hand-pose", "synthetic-to-real", "data-augmentation",
)  # fmt: skip
#: Longest rendering of one config value in the model card's tables.
_MAX_CELL = 200


def export_hub_folder(
    ckpt: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    license: str = "other",
    repo_id: str | None = None,
) -> Path:
    """Write ``out/``, ready to upload as a Hub model repository: the checkpoint in the directory
    layout (``generator.safetensors`` + ``config.json``) and a model card (``README.md``).

    The card starts with YAML front matter (``library_name: handaug``, ``license``, tags,
    ``pipeline_tag`` and a ``handaug`` entry with the network, direction, image size, masks,
    training configuration and the measures recorded in ``config.json``'s ``training``), then says
    how to load it (``SynthToReal("hf://REPO_ID")``) and tabulates the same information. Every file is
    written atomically, and the folder is read back with :func:`handaug.read_checkpoint` before
    returning, so what is uploaded loads.

    Args:
        ckpt: any checkpoint :func:`handaug.read_checkpoint` takes (checked completely first).
        out: the folder to write (created); if it exists it may hold only these three files.
        license: the card's license identifier (e.g. ``"mit"``, ``"cc-by-4.0"``); ``"other"`` by default.
        repo_id: ``ORG/REPO`` for the usage snippet (``ORG/REPO`` literally when not given).

    Raises:
        ValueError: ``out`` is a file or holds other files, or ``license``/``repo_id`` is malformed.
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", license):
        raise ValueError(f"license must be a license identifier such as 'mit' or 'cc-by-4.0', got {license!r}")
    if repo_id is not None:
        parse_hub_name(HF_SCHEME + repo_id)  # raises ValueError naming it
        if "/" in repo_id.split("/", 1)[1] or "@" in repo_id:
            raise ValueError(f"repo_id must be ORG/REPO, got {repo_id!r}")
    checkpoint = read_checkpoint(ckpt)
    out = Path(out)
    ours = {WEIGHTS_FILE, CONFIG_FILE, MODEL_CARD_FILE}
    if out.exists() and not out.is_dir():
        raise ValueError(f"out {str(out)!r} is a file; give a folder to write the Hub repository into")
    others = sorted(p.name for p in out.iterdir() if p.name not in ours) if out.is_dir() else []
    if others:
        raise ValueError(f"out {str(out)!r} holds other files ({', '.join(others[:5])}); give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    data = checkpoint.weights_bytes()  # exactly the bytes read_checkpoint checked (their SHA-256 is compared)
    config = {**checkpoint.config, "weights_sha256": hashlib.sha256(data).hexdigest()}
    card = model_card(config, license=license, repo_id=repo_id)  # before any file is written
    write_bytes_atomically(out / WEIGHTS_FILE, data, fsync=True)
    write_bytes_atomically(out / CONFIG_FILE, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(), fsync=True)
    write_bytes_atomically(out / MODEL_CARD_FILE, card.encode(), fsync=True)
    read_checkpoint(out)
    return out


def model_card(config: dict[str, Any], *, license: str = "other", repo_id: str | None = None) -> str:
    """The ``README.md`` of a Hub repository for a checkpoint with ``config`` (see :func:`export_hub_folder`).

    Values come from a file someone else may have written: in the YAML front matter they are
    serialised by PyYAML (quoted and escaped), in the Markdown tables shortened and escaped (see
    :func:`_cell`: no HTML, image, link or formatting from ``config.json`` takes effect). A
    ``training.final_metrics`` that is not an object is shown as a value, not tabulated.
    """
    yaml = require("yaml", "hub", needed_by="the Hub model card (handaug-export --format hub)")
    training = dict(config.get("training") or {})
    measures = training.pop("final_metrics", None) or {}
    if not isinstance(measures, dict):  # not a table of measures: shown as the value it is
        training["final_metrics"], measures = measures, {}
    network = config.get("network") or {}
    front = {
        "library_name": "handaug",
        "license": license,
        "tags": list(HUB_TAGS),
        "pipeline_tag": "image-to-image",
        "handaug": {
            "format_version": config.get("format_version"),
            "handaug_version": config.get("handaug_version"),
            "network": {"name": network.get("name"), "kwargs": network.get("kwargs") or {}},
            "direction": config.get("direction"),
            "image_size": config.get("image_size") or {},
            "mask": config.get("mask") or {},
            "training": training,
            "measures": measures,
        },
    }
    name = repo_id or "ORG/REPO"
    direction = _cell(config.get("direction", "synthetic_to_real")).replace("_", " ")
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, width=float("inf")).rstrip("\n"),
        "---",
        "",
        f"# {_cell(name)}: {direction} hand images (handaug H-GAN)",
        "",
        "A generator trained with handaug (`pip install handaug`): it changes only the appearance of",
        "hand images, so image size, hand silhouette and 2D/3D keypoints stay exactly as they were.",
        "",
        "```python",
        "import handaug",
        "",
        f's2r = handaug.SynthToReal("hf://{name}", p=0.7)   # needs pip install "handaug[hub]"',
        "out = s2r(images, mask=hand_masks)   # (B, 3, H, W) uint8 or float in [0, 1]",
        "```",
        "",
        "The weights are safetensors (never unpickled); `config.json` records how they were trained and the",
        "SHA-256 of the weights, which handaug checks when it loads them.",
        "",
        "## Network",
        "",
        *_table({"generator": network.get("name"), "arguments": network.get("kwargs") or {},
                 "direction": config.get("direction"), "image size": config.get("image_size") or {},
                 "masks": config.get("mask") or {}}),  # fmt: skip
        "",
        "## Training",
        "",
        *_table(training),
        "",
        "## Measures",
        "",
        *(_table(measures) if measures else ["No measures were recorded in config.json."]),
        "",
    ]
    return "\n".join(lines)


#: Characters that open Markdown or HTML syntax (tables, code, links, images, tags, entities):
#: shown literally in the card's tables, backslash-escaped.
_MARKDOWN_SYNTAX = frozenset("\\`|[]<>!&")


def _cell(value: object) -> str:
    """One value as Markdown text for a table cell: JSON for non-strings, shortened, control characters
    (newlines included) written as escapes, and the characters of Markdown and HTML syntax
    (``| ` [ ] < > ! &`` and the backslash, and the ``:`` of ``://``) backslash-escaped, so that no
    table cell, code span, image, link, autolink, entity or HTML tag from ``config.json`` takes effect."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > _MAX_CELL:
        text = text[:_MAX_CELL] + "…"
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    text = "".join("\\" + c if c in _MARKDOWN_SYNTAX else c for c in text)
    return text.replace("://", "\\://")


def _table(rows: dict[str, Any]) -> list[str]:
    if not rows:
        return ["(none recorded)"]
    return ["| | |", "| --- | --- |", *(f"| {_cell(k)} | {_cell(v)} |" for k, v in rows.items())]
