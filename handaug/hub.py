"""Checkpoints named on the Hugging Face Hub: ``hf://ORG/REPO[@REVISION][/SUBFOLDER]``.

Wherever handaug takes a checkpoint path (``SynthToReal``, ``load_generator``,
``read_checkpoint``, ``handaug-translate``, ``handaug-export``) it also takes a Hub name:

- ``hf://ORG/REPO``: the checkpoint directory layout (``generator.safetensors`` +
  ``config.json``) at the root of the model repository, on its default branch;
- ``hf://ORG/REPO@REVISION``: a branch, tag or commit (a revision holding ``/``, such as
  ``refs/pr/1``, is written percent-encoded: ``refs%2Fpr%2F1``, as in huggingface_hub's own
  ``hf://`` paths);
- ``hf://ORG/REPO/SUBFOLDER`` (or ``.../NAME.safetensors``): a checkpoint directory in a
  subfolder, or a single-file checkpoint.

The files are fetched with ``huggingface_hub`` (``pip install "handaug[hub]"``) into its cache
(``HF_HUB_CACHE`` / ``HF_HOME``), so a name is downloaded once and later resolved offline
(``HF_HUB_OFFLINE=1``, or handaug's ``HANDAUG_OFFLINE``, resolve from the cache only). What comes
back is verified exactly like a local checkpoint by :func:`handaug.checkpoint.read_checkpoint`
(config schema, SHA-256 of the weights, tensor names and shapes, finite values) and is never
unpickled: only ``.safetensors`` and ``.json`` files are fetched.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from handaug.pretrained import OFFLINE_ENV, env_flag, offline_requested

#: The prefix that marks a Hub name.
HF_SCHEME = "hf://"

#: An organisation or repository name as the Hub allows it: letters, digits, ``.``, ``_`` and ``-``,
#: starting and ending with a letter or digit, without ``--`` or ``..`` (huggingface_hub's own rule).
_NAME_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
#: Characters git refuses anywhere in a ref name (``git check-ref-format``), besides control characters.
_REF_FORBIDDEN = frozenset(" ~^:?*[\\")
_HINT = "expected hf://ORG/REPO, hf://ORG/REPO@REVISION or hf://ORG/REPO[@REVISION]/SUBFOLDER"


@dataclass(frozen=True)
class HubCheckpoint:
    """Where a checkpoint lies on the Hub: repository, revision (``None``: the default branch) and
    path inside the repository (``""``: its root; a ``.safetensors`` path names a single-file checkpoint)."""

    repo_id: str
    revision: str | None
    path_in_repo: str

    @property
    def name(self) -> str:
        """The ``hf://`` name (revision percent-encoded where it holds ``/``)."""
        revision = "" if self.revision is None else "@" + self.revision.replace("/", "%2F")
        return f"{HF_SCHEME}{self.repo_id}{revision}{'/' + self.path_in_repo if self.path_in_repo else ''}"


def is_hub_name(path: object) -> bool:
    """True for a string that starts with ``hf://``."""
    return isinstance(path, str) and path.startswith(HF_SCHEME)


def parse_hub_name(name: str) -> HubCheckpoint:
    """``hf://ORG/REPO[@REVISION][/SUBFOLDER]`` → :class:`HubCheckpoint`.

    Raises:
        ValueError: naming ``name``: not ``hf://``, a missing or malformed organisation or
            repository, an empty revision or one that is not a valid git ref name once
            percent-decoded (see :func:`ref_name_problem`), or a subfolder with empty, ``.`` or
            ``..`` parts, a backslash or control characters.
    """
    if not is_hub_name(name):
        raise ValueError(f"checkpoint {name!r} is not a Hub name: {_HINT}")
    parts = name[len(HF_SCHEME) :].split("/")
    if len(parts) < 2:
        raise ValueError(f"checkpoint {name!r} names no repository: {_HINT}")
    org, repo_and_revision, *subfolder = parts
    repo, at, revision = repo_and_revision.partition("@")
    for what, value in (("organisation", org), ("repository", repo)):
        if not _NAME_PART.fullmatch(value) or len(value) > 96 or "--" in value or ".." in value:
            raise ValueError(f"checkpoint {name!r}: {what} {value!r} is not a valid Hub name ({_HINT})")
    try:
        revision = unquote(revision, errors="strict")
    except UnicodeDecodeError:
        raise ValueError(f"checkpoint {name!r}: the revision {revision!r} percent-decodes to bytes that are not UTF-8") from None
    if at and not revision:
        raise ValueError(f"checkpoint {name!r}: empty revision after '@' ({_HINT})")
    if at:
        problem = ref_name_problem(revision)
        if problem:
            raise ValueError(f"checkpoint {name!r}: revision {revision!r} is not a valid git ref name: {problem}")
    if any(part in ("", ".", "..") for part in subfolder):
        raise ValueError(f"checkpoint {name!r}: the subfolder {'/'.join(subfolder)!r} has an empty, '.' or '..' part")
    bad = next((c for c in "/".join(subfolder) if c == "\\" or not c.isprintable()), None)
    if bad is not None:
        raise ValueError(
            f"checkpoint {name!r}: the subfolder {'/'.join(subfolder)!r} holds {bad!r} (no backslash or control characters)"
        )
    return HubCheckpoint(f"{org}/{repo}", revision if at else None, "/".join(subfolder))


def ref_name_problem(ref: str) -> str | None:
    """What makes ``ref`` an invalid git ref name (the rules of ``git check-ref-format``), or ``None``.

    A revision reaches huggingface_hub, which reads (offline) and writes (online) the cache file
    ``refs/<revision>``: a name with ``..``, a leading ``/`` or a backslash would name a file
    outside the cache, so these names are refused before it is called.
    """
    if ref == "@":
        return "it is the single character '@'"
    if len(ref) > 255:
        return f"it is {len(ref)} characters long (at most 255)"
    bad = next((c for c in ref if c in _REF_FORBIDDEN or ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        return f"it holds {bad!r} (no space, control characters or any of ~^:?*[\\)"
    if ".." in ref:
        return "it holds '..'"
    if "@{" in ref:
        return "it holds '@{'"
    if ref.startswith("/") or ref.endswith("/"):
        return "it starts or ends with '/'"
    if "//" in ref:
        return "it holds '//'"
    if ref.endswith("."):
        return "it ends with '.'"
    for component in ref.split("/"):
        if component.startswith("."):
            return f"its part {component!r} starts with '.'"
        if component.endswith(".lock"):
            return f"its part {component!r} ends with '.lock'"
    return None


def fetch_checkpoint(name: str) -> Path:
    """Download (or find in the Hub cache) the checkpoint ``name`` and return its local path: the
    checkpoint directory inside the cache's snapshot, or the ``.safetensors`` file.

    Only ``generator.safetensors`` and ``config.json`` (or the named ``.safetensors`` file) are
    fetched. With ``HF_HUB_OFFLINE=1`` or ``HANDAUG_OFFLINE=1`` set, only the cache is used (``0``,
    ``false``, ``no`` or ``off`` mean online).

    Raises:
        ValueError: a malformed name (see :func:`parse_hub_name`).
        ImportError: ``huggingface_hub`` is not installed.
        FileNotFoundError: the repository, revision or files do not exist, are not cached while
            offline, or cannot be fetched (gated, network down); the message names ``name``.
    """
    from handaug.checkpoint import CONFIG_FILE, WEIGHTS_FILE

    location = parse_hub_name(name)
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as err:
        raise ImportError(
            f"checkpoint {name!r} is on the Hugging Face Hub: pip install 'handaug[hub]' (huggingface_hub)"
        ) from err
    if location.path_in_repo.endswith(".safetensors"):
        files = [location.path_in_repo]
    else:
        prefix = location.path_in_repo + "/" if location.path_in_repo else ""
        files = [prefix + CONFIG_FILE, prefix + WEIGHTS_FILE]
    why_offline = _offline_reason()
    offline = why_offline is not None
    revision = location.revision
    local: list[Path] = []
    for filename in files:
        try:
            path = Path(hf_hub_download(location.repo_id, filename, revision=revision, local_files_only=offline))
        except (OSError, ValueError) as err:  # huggingface_hub's errors: not found, not cached, HTTP, offline
            what = f"checkpoint {name!r}: {filename!r} of {location.repo_id!r} (revision {location.revision or 'default'})"
            if offline:  # only the cache was asked: say so, not "check your connection"
                raise FileNotFoundError(
                    f"{what} was not found in the Hub cache, and downloads are off ({why_offline}): check the name, "
                    "or fetch it once with network access"
                ) from None
            raise FileNotFoundError(
                f"{what} was not found on the Hugging Face Hub or in its cache: {type(err).__name__}: {_first_line(err)}"
            ) from None
        # The cache keeps files under snapshots/<commit>/<filename>: the next file comes from the
        # same commit, so a branch that moves between the two downloads cannot mix two versions.
        revision = path.parents[len(Path(filename).parts) - 1].name
        local.append(path)
    return local[0] if len(files) == 1 else local[0].parent


def _offline_reason() -> str | None:
    """Why only the Hub cache may be used (``"HANDAUG_OFFLINE is set"``, ``"HF_HUB_OFFLINE is set"``), or ``None``.

    Both variables are on/off flags: ``0``, ``false``, ``no``, ``off`` or empty mean online.
    """
    if offline_requested():
        return f"{OFFLINE_ENV} is set"
    try:
        from huggingface_hub import constants
    except ImportError:
        constants = None
    if env_flag("HF_HUB_OFFLINE") or bool(getattr(constants, "HF_HUB_OFFLINE", False)):
        return "HF_HUB_OFFLINE is set"
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""


# ---------------------------------------------------------------------------- a folder to upload
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
    import hashlib

    from handaug.atomic_files import write_bytes_atomically
    from handaug.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_checkpoint

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
    from handaug.optional import require

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
