"""Tensors in safetensors files with a JSON config beside them or in their metadata. Nothing is unpickled.

The writing and bounded reading that handaug's three tensor formats share: the generator
checkpoint (:mod:`handaug.checkpoint`), the SilNet checkpoint (:mod:`handaug.silnet.checkpoint`)
and the keypoint-oracle file (:mod:`handaug.metrics.pose_consistency`). Each format keeps its own
config schema, names and messages; this module holds the two layouts they use:

- **directory**: ``WEIGHTS`` (a safetensors file whose metadata is ``{"format": FORMAT}``) and
  ``CONFIG`` (indented JSON with sorted keys and a final newline), written in that order, both
  atomically; the config records the weights file's SHA-256 (``"weights_sha256"``, 64 hex
  digits), so a config always describes the weights beside it (:func:`write_tensor_directory`,
  :func:`read_config_file`);
- **single file**: one safetensors file whose metadata entry ``KEY`` holds the config as JSON
  (:func:`write_tensor_file`, :func:`safetensors_metadata`).

Files are serialised in memory and written through :func:`handaug.atomic_files.write_bytes_atomically`
(mode ``0o666`` less the umask, not the ``0o600`` safetensors gives files it creates itself).
Reading is bounded: a config file is read up to :data:`handaug.checkpoint_config.MAX_CONFIG_BYTES`
+ 1 bytes, a safetensors header up to :data:`MAX_HEADER_BYTES`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from handaug.atomic_files import json_bytes, write_bytes_atomically
from handaug.checkpoint_config import MAX_CONFIG_BYTES, parse_config

__all__ = [
    "MAX_HEADER_BYTES",
    "json_ready",
    "read_config_file",
    "safetensors_bytes",
    "safetensors_metadata",
    "write_tensor_directory",
    "write_tensor_file",
]

#: Longest safetensors header (JSON) read (safetensors' own limit is 100 MB).
MAX_HEADER_BYTES = 100_000_000


def json_ready(value: Any, where: str, *, finite: bool = False) -> Any:
    """``value`` as plain JSON values (tuples become lists), as a config will read back.

    Args:
        value: what goes into a config.
        where: what ``value`` is, for the message (``"training"``).
        finite: also refuse NaN and infinities.

    Raises:
        ValueError: ``value`` holds something JSON cannot hold (or, with ``finite``, NaN or ±inf):
            ``"<where> must hold only JSON values (numbers, strings, lists, dicts): ..."`` (``only
            finite JSON values`` with ``finite``).
    """
    try:
        return json.loads(json.dumps(value, allow_nan=not finite))
    except (TypeError, ValueError) as err:
        kind = "finite JSON values" if finite else "JSON values (numbers, strings, lists, dicts)"
        raise ValueError(f"{where} must hold only {kind}: {err}") from None


def safetensors_bytes(state: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """``state`` (name → tensor) serialised as a safetensors file, in memory.

    A tensor stored under several names (tied parameters) is kept under its first name only, as
    ``safetensors.torch.save_model`` does; every tensor is copied to the CPU and made contiguous,
    so views that share storage are written independently.
    """
    kept: dict[str, torch.Tensor] = {}
    seen: set[tuple[Any, ...]] = set()
    for name, tensor in state.items():
        tensor = tensor.detach()
        identity = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
                    tuple(tensor.stride()), tensor.dtype)  # fmt: skip
        if tensor.numel() and identity in seen:
            continue
        seen.add(identity)
        kept[name] = tensor.to("cpu", copy=True).contiguous()
    return safetensors.torch.save(kept, metadata=metadata)


def write_tensor_file(path: str | os.PathLike[str], state: Mapping[str, torch.Tensor], key: str, config: Any) -> bytes:
    """Write ``state`` to the safetensors file ``path`` atomically, with ``json.dumps(config)`` in its metadata entry ``key``.

    Returns the bytes written.
    """
    data = safetensors_bytes(state, {key: json.dumps(config)})
    write_bytes_atomically(path, data, fsync=True)
    return data


def write_tensor_directory(
    path: str | os.PathLike[str],
    state: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    *,
    format: str,
    weights_file: str,
    config_file: str,
) -> Path:
    """Write ``state`` to ``path/weights_file`` and ``config`` plus the weights' SHA-256 to ``path/config_file``.

    ``path`` is created if needed. The weights (metadata ``{"format": format}``) are written
    first, the config (``config`` with ``"weights_sha256"`` added, as :func:`handaug.atomic_files.json_bytes`)
    last, each atomically: a directory with a config always holds the weights it describes.
    Returns ``path``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    data = safetensors_bytes(state, {"format": format})
    write_bytes_atomically(path / weights_file, data, fsync=True)
    recorded = {**config, "weights_sha256": hashlib.sha256(data).hexdigest()}
    write_bytes_atomically(path / config_file, json_bytes(recorded), fsync=True)
    return path


def read_config_file(path: str | os.PathLike[str], where: str) -> Any:
    """The JSON in the config file ``path``, reading at most ``MAX_CONFIG_BYTES + 1`` bytes of it.

    Raises:
        ValueError: too large, not UTF-8 or not JSON (see :func:`handaug.checkpoint_config.parse_config`),
            the message starting with ``where``.
    """
    with open(path, "rb") as f:
        return parse_config(f.read(MAX_CONFIG_BYTES + 1), where)


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of the safetensors file whose bytes are ``data`` (``{}`` if it has none).

    Its header is an 8-byte little-endian length, then that many bytes of JSON (at most
    :data:`MAX_HEADER_BYTES`); only the header is read: tensors are checked when loaded.

    Raises:
        ValueError: the header is not a JSON object, or its metadata is not an object of
            strings; the message says which (``"its header is not a JSON object"``), for the
            caller to prefix with the file.
    """
    length = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    header: Any = None
    if 0 < length <= len(data) - 8 and length <= MAX_HEADER_BYTES:
        try:
            header = json.loads(data[8 : 8 + length])
        except (ValueError, RecursionError):
            header = None
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")  # noqa: TRY004 - a corrupt file, not a caller's wrong type
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("its '__metadata__' is not an object of strings")
    return metadata
