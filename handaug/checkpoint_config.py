"""The generator checkpoint's file format: its file names, and its JSON config parsed safely and checked.

A checkpoint is a directory holding :data:`WEIGHTS_FILE` and :data:`CONFIG_FILE`, or a single
``.safetensors`` file whose metadata key :data:`METADATA_KEY` holds the config (see
:mod:`handaug.checkpoint`, which reads and writes both; :mod:`handaug.hub` fetches the same
files by name).

A config comes from a file anyone may have written. Parsing never raises anything but
``ValueError`` (a 5,000-digit number or 10,000 nested brackets are "corrupt", not a
``RecursionError``), and :func:`validate_config` checks every key handaug reads, naming the file,
the key (``network.kwargs.ngf``, ``mask.background``) and what was expected. Values echoed from
the file go through :func:`handaug.untrusted_text.shown`.

Schema of ``format_version`` 1 (every key is required unless marked optional)::

    format            "handaug.generator"
    format_version    integer, 1 .. FORMAT_VERSION
    handaug_version   string
    network           {"kind": "generator", "name": str, "kwargs": {str: JSON value},
                       "plugin": str | null, "distribution": str | null, "version": str | null}
    direction         "synthetic_to_real" | "real_to_synthetic"
    normalization     {"range": [-1, 1]}
    stride            integer, 1 .. MAX_STRIDE (checked against the network by handaug.checkpoint)
    mask              {"background": number in [-1, 1] | null, "trained_with_masks": bool}
    image_size        {"train": integer | null (optional), "val": integer | null (optional)}
    training          object, free-form
    weights_sha256    64 hexadecimal digits (directory layout only)

Every number anywhere in the config, ``training`` included, must be finite, and nothing may be
nested deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from handaug._version import __version__
from handaug.untrusted_text import shown

FORMAT = "handaug.generator"
FORMAT_VERSION = 1
DIRECTIONS: tuple[str, ...] = ("synthetic_to_real", "real_to_synthetic")

#: The weights file of the directory layout.
WEIGHTS_FILE = "generator.safetensors"
#: The config file of the directory layout (JSON, with the SHA-256 of :data:`WEIGHTS_FILE`).
CONFIG_FILE = "config.json"
#: The safetensors metadata key holding the config in the single-file layout.
METADATA_KEY = "handaug_config"

#: Largest config accepted (bytes); a real one is a few kilobytes.
MAX_CONFIG_BYTES = 4 << 20
#: Deepest nesting of objects and lists accepted anywhere in a config.
MAX_DEPTH = 32
#: Largest generator stride accepted (inputs are padded to a multiple of it).
MAX_STRIDE = 256
#: Largest image side accepted in ``image_size``.
MAX_IMAGE_SIDE = 1 << 16
#: Longest network name, plugin, distribution or version string accepted.
MAX_NAME_LENGTH = 200

_SHA256 = re.compile(r"[0-9a-f]{64}")


def parse_config(data: bytes | str, where: str) -> Any:
    """Parse JSON ``data`` read from ``where`` (a description of the file, used in messages).

    Read at most ``MAX_CONFIG_BYTES + 1`` bytes of a file: more is refused here.

    Raises:
        ValueError: ``data`` is too large, not UTF-8, not JSON, nested too deeply for the
            parser, or holds an integer too long to convert.
    """
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"{where} is larger than the {MAX_CONFIG_BYTES} bytes a handaug config may have: it is corrupt")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text)
    except json.JSONDecodeError as err:  # its message gives a position, never the file's text
        raise ValueError(f"{where} is not valid JSON: {err}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{where} is corrupt: it is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except RecursionError:
        raise ValueError(f"{where} is corrupt: its JSON is nested too deeply to parse") from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise ValueError(f"{where} is corrupt: it holds an integer with thousands of digits") from None


def _error(where: str, key: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{where}: key {key!r} must be {expected}, got {shown(value)}")


def _check_tree(config: Any, where: str) -> None:
    """Every number finite, every level at most MAX_DEPTH deep (iteratively: no recursion to exhaust)."""
    stack: list[tuple[str, Any, int]] = [("", config, 0)]
    while stack:
        key, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{where}: key {shown(key)} is nested deeper than {MAX_DEPTH} levels: the config is corrupt")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}: key {shown(key)} is {value}, expected a finite number")
        if isinstance(value, dict):
            stack.extend((f"{key}.{k}" if key else str(k), v, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{key}[{i}]", v, depth + 1) for i, v in enumerate(value))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(key: str, value: Any, low: int, high: int, where: str) -> None:
    if not _is_int(value) or not low <= value <= high:
        raise _error(where, key, f"an integer in [{low}, {high}]", value)


def _check_name(value: Any, key: str, where: str, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH or not value.isprintable():
        kind = "a string or null" if optional else "a non-empty string"
        raise _error(where, key, f"{kind} of at most {MAX_NAME_LENGTH} printable characters", value)


def _object(config: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = config.get(key)
    if not isinstance(value, dict):
        raise _error(where, key, "a JSON object", value)
    return value


def validate_config(config: Any, where: str, *, needs_sha256: bool) -> dict[str, Any]:
    """Check ``config`` (parsed from ``where``) against the schema above and return it unchanged.

    Args:
        config: the parsed JSON.
        where: description of the file it came from, used in messages.
        needs_sha256: the directory layout, whose config records the weights' SHA-256.

    Raises:
        ValueError: naming ``where``, the key and what was expected.
    """
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{where} is not a handaug generator checkpoint (format {shown(found)}, expected {FORMAT!r})")
    version = config.get("format_version")
    if not _is_int(version) or version < 1:
        raise _error(where, "format_version", f"an integer from 1 to {FORMAT_VERSION}", version)
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{where} has format version {shown(version)} (written by handaug {shown(config.get('handaug_version'))}); "
            f"this handaug {__version__} reads versions up to {FORMAT_VERSION}: upgrade handaug"
        )
    _check_tree(config, where)
    _check_name(config.get("handaug_version"), "handaug_version", where, optional=False)

    network = _object(config, "network", where)
    if network.get("kind") != "generator":
        raise ValueError(f"{where} holds a {shown(network.get('kind'))} network, expected a generator")
    _check_name(network.get("name"), "network.name", where, optional=False)
    if not isinstance(network.get("kwargs"), dict):
        raise _error(where, "network.kwargs", "a JSON object of keyword arguments", network.get("kwargs"))
    for key in ("plugin", "distribution", "version"):
        _check_name(network.get(key), f"network.{key}", where, optional=True)

    if config.get("direction") not in DIRECTIONS:
        raise ValueError(f"{where}: direction {shown(config.get('direction'))} is not one of {DIRECTIONS}")
    normalization = _object(config, "normalization", where)
    value_range = normalization.get("range")
    if not (isinstance(value_range, list) and len(value_range) == 2 and all(_is_number(v) for v in value_range)
            and tuple(value_range) == (-1, 1)):
        raise _error(where, "normalization.range", "[-1.0, 1.0] (the only range handaug generators use)", value_range)
    _check_int("stride", config.get("stride"), 1, MAX_STRIDE, where)

    mask = _object(config, "mask", where)
    background = mask.get("background")
    if background is not None and (not _is_number(background) or not -1.0 <= background <= 1.0):
        raise _error(where, "mask.background", "a number in [-1, 1] or null", background)
    if not isinstance(mask.get("trained_with_masks"), bool):
        raise _error(where, "mask.trained_with_masks", "true or false", mask.get("trained_with_masks"))

    image_size = _object(config, "image_size", where)
    for key in ("train", "val"):
        side = image_size.get(key)
        if side is not None:
            _check_int(f"image_size.{key}", side, 1, MAX_IMAGE_SIDE, where)
    _object(config, "training", where)

    if needs_sha256:
        digest = config.get("weights_sha256")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _error(where, "weights_sha256", "the SHA-256 of the weights file (64 lowercase hexadecimal digits)", digest)
    return config
