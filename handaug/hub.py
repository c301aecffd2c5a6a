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

A folder to upload as such a repository, with its model card, is written by
:func:`handaug.export.export_hub_folder` (``handaug-export --format hub``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from handaug.checkpoint_config import CONFIG_FILE, WEIGHTS_FILE
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
    location = parse_hub_name(name)
    try:  # deferred: huggingface_hub is the [hub] extra
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
    try:  # deferred: huggingface_hub is the [hub] extra
        from huggingface_hub import constants
    except ImportError:
        constants = None
    if env_flag("HF_HUB_OFFLINE") or bool(getattr(constants, "HF_HUB_OFFLINE", False)):
        return "HF_HUB_OFFLINE is set"
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""
