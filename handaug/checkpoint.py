"""The generator checkpoint format: safetensors weights + a JSON config. Nothing is ever unpickled.

Two layouts hold the same information:

- a directory with ``generator.safetensors`` and ``config.json`` (what ``handaug-train``
  exports to ``DIR/export/``); the config carries the SHA-256 of the weights file, so a
  weights file and a config that do not belong together are detected;
- a single ``.safetensors`` file whose metadata entry ``handaug_config`` holds the config.

The config (``format_version`` 1)::

    {
      "format": "handaug.generator", "format_version": 1, "handaug_version": "0.1.0",
      "network": {"kind": "generator", "name": "resnet", "kwargs": {"n_blocks": 4},
                  "plugin": "handaug.plugins.resnet", "distribution": "handaug", "version": "0.1.0"},
      "direction": "synthetic_to_real",
      "normalization": {"range": [-1.0, 1.0]},
      "stride": 4,
      "mask": {"background": 1.0, "trained_with_masks": true},
      "image_size": {"train": 128, "val": 256},
      "training": {...free-form summary...},
      "weights_sha256": "..."            # directory layout only
    }

The network is rebuilt by registry name and keyword arguments (:mod:`handaug.registry`), so a
checkpoint of a plugin's network needs that plugin installed; the error says which one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from handaug._version import __version__
from handaug.atomic_files import file_sha256, replaced_atomically, write_bytes_atomically
from handaug.registry import NetworkSpec, PluginError, get_registry, network_spec

FORMAT = "handaug.generator"
FORMAT_VERSION = 1
WEIGHTS_FILE = "generator.safetensors"
CONFIG_FILE = "config.json"
METADATA_KEY = "handaug_config"
DIRECTIONS: tuple[str, ...] = ("synthetic_to_real", "real_to_synthetic")


def _save_weights(module: nn.Module, path: Path, metadata: dict[str, str] | None) -> None:
    from safetensors.torch import save_model

    with replaced_atomically(path) as tmp:
        # save_model (rather than save_file) copes with networks whose parameters share storage.
        save_model(module, tmp, metadata=metadata)


def _json_ready(value: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} must hold only JSON values (numbers, strings, lists, dicts): {err}") from err


def save_generator(
    generator: nn.Module,
    path: str | os.PathLike[str],
    *,
    direction: str = "synthetic_to_real",
    image_size: dict[str, int | None] | None = None,
    background: float | None = None,
    trained_with_masks: bool = False,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write ``generator`` in handaug's checkpoint format and return where it went.

    Args:
        generator: a network made by :func:`handaug.registry.create_generator` (its registry
            name and keyword arguments are recorded then).
        path: a directory (created if needed; ``generator.safetensors`` + ``config.json``), or a
            file ending in ``.safetensors`` (config in its metadata).
        direction: ``"synthetic_to_real"`` (the generator ``SynthToReal`` uses) or
            ``"real_to_synthetic"``.
        image_size: ``{"train": crop, "val": size}`` the generator was trained/validated at.
        background: value in ``[-1, 1]`` the background was set to in training (``None``: kept).
        trained_with_masks: whether translations were composited with hand masks in training.
        training: free-form JSON summary of the training run.

    Every file is written to a temporary name and renamed into place, so an interrupted save
    never leaves a half-written checkpoint behind.

    Raises:
        ValueError: ``generator`` was not made by the registry, or arguments are not JSON values.
    """
    spec = network_spec(generator)
    if spec is None:
        raise ValueError(
            "generator was not created by handaug.registry.create_generator, so its name and arguments "
            "are unknown and it could not be rebuilt; create it with create_generator(name, **kwargs)"
        )
    if spec.kind != "generator":
        raise ValueError(f"generator is a {spec.kind} ({spec.name!r}), expected a generator")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "handaug_version": __version__,
        "network": _json_ready(spec.to_dict(), f"the arguments of generator {spec.name!r}"),
        "direction": direction,
        "normalization": {"range": [-1.0, 1.0]},
        "stride": int(getattr(generator, "stride", 1)),
        "mask": {"background": background, "trained_with_masks": bool(trained_with_masks)},
        "image_size": dict(image_size or {}),
        "training": _json_ready(training or {}, "training"),
    }
    path = Path(path)
    if path.suffix == ".safetensors":
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_weights(generator, path, {METADATA_KEY: json.dumps(config)})
        return path
    path.mkdir(parents=True, exist_ok=True)
    weights = path / WEIGHTS_FILE
    _save_weights(generator, weights, {"format": FORMAT})
    config["weights_sha256"] = file_sha256(weights)
    write_bytes_atomically(path / CONFIG_FILE, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(), fsync=True)
    return path


@dataclass(frozen=True)
class GeneratorCheckpoint:
    """A validated checkpoint on disk: its config, read without building the network."""

    path: Path
    weights_path: Path
    config: dict[str, Any]

    @property
    def spec(self) -> NetworkSpec:
        return NetworkSpec.from_dict(self.config["network"])

    @property
    def stride(self) -> int:
        return int(self.config.get("stride", 1))

    @property
    def background(self) -> float | None:
        return (self.config.get("mask") or {}).get("background")

    @property
    def direction(self) -> str:
        return self.config["direction"]

    def build(self, device: torch.device | str | None = None) -> nn.Module:
        """Rebuild the generator, load its weights, and return it in eval mode without gradients.

        Raises:
            PluginError: the plugin that provides the network is not installed.
            ValueError: the weights do not fit the network the config describes.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_model

        from handaug.registry import create_generator

        spec = self.spec
        if spec.name not in get_registry("generator"):
            origin = f"plugin {spec.plugin!r}" if spec.plugin else "a plugin"
            if spec.distribution:
                origin += f" of the distribution {spec.distribution!r} (version {spec.version}); `pip install {spec.distribution}`"
            raise PluginError(
                f"checkpoint {str(self.path)!r} needs the generator {spec.name!r}, which no installed plugin provides: "
                f"it was made by {origin}. Installed generators: {', '.join(get_registry('generator').names())}"
            )
        try:
            generator = create_generator(spec.name, **spec.kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"checkpoint {str(self.path)!r}: its generator arguments {spec.kwargs} are rejected: {err}") from err
        try:
            load_model(generator, str(self.weights_path), strict=True, device="cpu")
        except (RuntimeError, SafetensorError, OSError) as err:
            raise ValueError(
                f"checkpoint {str(self.path)!r}: the weights do not fit a {spec.name!r} generator with {spec.kwargs}: {err}"
            ) from err
        generator.eval().requires_grad_(False)
        if device is not None:
            generator.to(device)
        return generator


def _read_config_dir(path: Path) -> tuple[dict[str, Any], Path]:
    config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for required in (config_path, weights_path):
        if not required.is_file():
            raise FileNotFoundError(
                f"checkpoint directory {str(path)!r} has no {required.name} (a handaug checkpoint holds "
                f"{WEIGHTS_FILE} and {CONFIG_FILE})"
            )
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"checkpoint config {str(config_path)!r} is not valid JSON: {err}") from err
    expected = config.get("weights_sha256") if isinstance(config, dict) else None
    if expected and file_sha256(weights_path) != expected:
        raise ValueError(
            f"checkpoint {str(path)!r}: {WEIGHTS_FILE} does not match the SHA-256 recorded in {CONFIG_FILE} "
            "(the weights are corrupt, or were replaced without their config)"
        )
    return config, weights_path


def _read_config_file(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"checkpoint {str(path)!r} is not a readable safetensors file: {err}") from err
    if METADATA_KEY not in metadata:
        raise ValueError(
            f"checkpoint {str(path)!r} is a safetensors file without handaug's config in its metadata "
            f"(key {METADATA_KEY!r}); it was not written by handaug.save_generator"
        )
    try:
        return json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(f"checkpoint {str(path)!r}: its {METADATA_KEY!r} metadata is not valid JSON: {err}") from err


def _validate_config(config: Any, path: Path) -> dict[str, Any]:
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"checkpoint {str(path)!r} is not a handaug generator checkpoint (format {found!r}, expected {FORMAT!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {str(path)!r} has format version {version!r} (written by handaug {config.get('handaug_version')}); "
            f"this handaug {__version__} reads versions up to {FORMAT_VERSION}: upgrade handaug"
        )
    network = config.get("network")
    if not isinstance(network, dict) or not isinstance(network.get("name"), str):
        raise ValueError(f"checkpoint {str(path)!r}: its config has no valid 'network' entry")
    if network.get("kind") != "generator":
        raise ValueError(f"checkpoint {str(path)!r} holds a {network.get('kind')!r} network, expected a generator")
    if config.get("direction") not in DIRECTIONS:
        raise ValueError(f"checkpoint {str(path)!r}: direction {config.get('direction')!r} is not one of {DIRECTIONS}")
    return config


def read_checkpoint(path: str | os.PathLike[str]) -> GeneratorCheckpoint:
    """Read and validate a checkpoint's config (directory or ``.safetensors`` file) without building it.

    Raises:
        FileNotFoundError: ``path`` or one of its files does not exist.
        ValueError: the files are corrupt, of another format or kind, or from a newer handaug.
    """
    path = Path(path)
    if path.is_dir():
        config, weights = _read_config_dir(path)
    elif path.is_file():
        config, weights = _read_config_file(path), path
    else:
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    return GeneratorCheckpoint(path, weights, _validate_config(config, path))


def load_generator(path: str | os.PathLike[str], device: torch.device | str | None = None) -> nn.Module:
    """Rebuild the generator saved at ``path`` (directory or ``.safetensors``), in eval mode.

    No Lightning, no pickle: the network is created by registry name from the JSON config and
    its weights are read with safetensors. The result maps ``(B, 3, H, W)`` float in ``[-1, 1]``
    to the same shape and range.
    """
    return read_checkpoint(path).build(device)
