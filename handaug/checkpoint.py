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

A checkpoint is a file anyone may have written, so :func:`read_checkpoint` checks everything
that can be checked before a single weight is allocated: the whole config schema
(:mod:`handaug.checkpoint_config`), the network's arguments against the ranges its plugin
declares, the network's stride, and the names, shapes and dtypes in the safetensors header
against the network built on the ``meta`` device (no memory). Then it reads every tensor once
to refuse NaN or infinite weights. A 600-byte file asking for a 1024-filter network is refused
in milliseconds, and a checkpoint that passes builds without surprises.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
import torch.nn as nn

from handaug._version import __version__
from handaug.atomic_files import file_sha256
from handaug.checkpoint_config import (
    CONFIG_FILE,
    DIRECTIONS,
    FORMAT,
    FORMAT_VERSION,
    METADATA_KEY,
    WEIGHTS_FILE,
    parse_config,
    validate_config,
)
from handaug.hub import fetch_checkpoint, is_hub_name
from handaug.lightning_checkpoint import EXPORT_HINT, training_checkpoint_message
from handaug.registry import ArgumentOutOfBounds, NetworkSpec, PluginError, create_generator, get_registry, network_spec
from handaug.safetensors_files import (
    json_ready,
    read_config_file,
    safetensors_metadata,
    write_tensor_directory,
    write_tensor_file,
)
from handaug.untrusted_text import shown


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
        ValueError: ``generator`` was not made by the registry, or arguments are not JSON values
            or would make a config that loading refuses (see :mod:`handaug.checkpoint_config`:
            a NaN or out-of-range ``background``, a non-finite number in ``training``, ...).
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
        "network": json_ready(spec.to_dict(), f"the arguments of generator {spec.name!r}"),
        "direction": direction,
        "normalization": {"range": [-1.0, 1.0]},
        "stride": int(getattr(generator, "stride", 1)),
        "mask": {"background": background, "trained_with_masks": bool(trained_with_masks)},
        "image_size": dict(image_size or {}),
        "training": json_ready(training or {}, "training"),
    }
    # What would be refused when loading is refused now, before anything is written.
    validate_config(config, "the config save_generator would write", needs_sha256=False)
    path = Path(path)
    if path.suffix == ".safetensors":
        path.parent.mkdir(parents=True, exist_ok=True)
        write_tensor_file(path, generator.state_dict(), METADATA_KEY, config)
        return path
    return write_tensor_directory(path, generator.state_dict(), config, format=FORMAT, weights_file=WEIGHTS_FILE, config_file=CONFIG_FILE)


#: Tensor name → (dtype kind, see :func:`dtype_kind`; shape).
TensorHeader = dict[str, tuple[str, tuple[int, ...]]]


@dataclass(frozen=True)
class GeneratorCheckpoint:
    """A checkpoint on disk with its validated config (see :func:`read_checkpoint`).

    ``weights_sha256`` is the SHA-256 (hex) of the weights file as it was when the checkpoint was
    read: :meth:`verify`, :meth:`build` and :meth:`weights_bytes` read the file once into memory,
    hash those bytes and refuse them unless they match, so weights replaced after reading (a
    re-export into the same folder, a changed cache, in a DataLoader worker or an unpickled copy)
    are never used silently. ``None`` (a checkpoint made by hand) skips that check.
    """

    path: Path
    weights_path: Path
    config: dict[str, Any]
    weights_sha256: str | None = None

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

    @property
    def _where(self) -> str:
        return f"checkpoint {str(self.path)!r}"

    def verify(self) -> None:
        """Check everything short of building the network; :func:`read_checkpoint` calls this.

        The generator's plugin is installed, its arguments are within the ranges the plugin
        declares, the network (built on the ``meta`` device: no memory) has the config's stride
        and exactly the tensor names, shapes and dtype kinds of the weights file's header, and
        every floating-point weight is finite (this reads the weights once).

        Raises:
            PluginError: the plugin that provides the network is not installed.
            ValueError: any other mismatch, naming the file and the key or tensor.
        """
        network = network_on_meta(self.spec, self._where)
        tensors = self._tensors()
        if network is not None:
            self._check_stride(network)
            check_tensors_fit(network, _tensors_header(tensors), self._where, self._no_fit())
        for name in sorted(tensors):
            check_finite(name, tensors[name], f"{self._where} ({self.weights_path.name})")

    def weights_bytes(self) -> bytes:
        """The weights file's bytes, read once, after checking their SHA-256 against ``weights_sha256``.

        Raises:
            FileNotFoundError: the weights file no longer exists.
            ValueError: it cannot be read, or changed since the checkpoint was read; the message
                names the file.
        """
        try:
            data = self.weights_path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{self._where}: {str(self.weights_path)!r} no longer exists (it was removed after the checkpoint was read)"
            ) from None
        except OSError as err:
            raise ValueError(f"{self._where}: {str(self.weights_path)!r} cannot be read: {err.strerror or err}") from None
        if self.weights_sha256 is not None:
            digest = hashlib.sha256(data).hexdigest()
            if digest != self.weights_sha256:
                raise ValueError(
                    f"{self._where}: {str(self.weights_path)!r} changed since the checkpoint was read (when the "
                    f"transform was built): its SHA-256 is now {digest[:16]}…, it was {self.weights_sha256[:16]}…; "
                    "build the transform again to use the new weights"
                )
        return data

    def _tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the weights file (on the CPU), from the bytes :meth:`weights_bytes` checked."""
        data = self.weights_bytes()
        try:
            return safetensors.torch.load(data)
        except (safetensors.SafetensorError, ValueError, TypeError, RuntimeError) as err:
            raise ValueError(
                f"{self._where}: {self.weights_path.name!r} is not a readable safetensors file: {shown(str(err), limit=300)}"
            ) from None

    def build(self, device: torch.device | str | None = None) -> nn.Module:
        """Rebuild the generator, load its weights, and return it in eval mode without gradients.

        The weights file is read once into memory and its SHA-256 compared with the one taken
        when the checkpoint was read (see :meth:`weights_bytes`): what is loaded is exactly what
        was checked, with no window between check and use. The checks of :meth:`verify` run
        again on those bytes, and the network is first built on ``meta``, so nothing is
        allocated for a network the weights do not describe.

        Raises:
            PluginError: the plugin that provides the network is not installed.
            FileNotFoundError: the weights file was removed since the checkpoint was read.
            ValueError: the weights changed since the checkpoint was read, do not fit the network
                the config describes, or are not finite.
        """
        spec = self.spec
        network = network_on_meta(spec, self._where)
        tensors = self._tensors()
        header = _tensors_header(tensors)
        if network is not None:
            check_tensors_fit(network, header, self._where, self._no_fit())
        try:
            generator = create_generator(spec.name, **spec.kwargs)
        except (TypeError, ValueError) as err:
            raise _rejected(spec, self._where, err) from None
        self._check_stride(generator)
        # The names and shapes fit (tied parameters may be stored under one of their names only),
        # so a non-strict load sets every parameter and buffer.
        check_tensors_fit(generator, header, self._where, self._no_fit())
        for name in sorted(tensors):
            check_finite(name, tensors[name], f"{self._where} ({self.weights_path.name})")
        try:
            generator.load_state_dict(tensors, strict=False)
        except RuntimeError as err:
            raise ValueError(f"{self._where}: {self._no_fit()}: {shown(str(err), limit=300)}") from None
        generator.eval().requires_grad_(False)
        if device is not None:
            generator.to(device)
        return generator

    # ------------------------------------------------------------------ checks
    def _no_fit(self) -> str:
        spec = self.spec
        return f"the weights in {self.weights_path.name!r} do not fit a {shown(spec.name)} generator with {shown(spec.kwargs)}"

    def _check_stride(self, network: nn.Module) -> None:
        stride = int(getattr(network, "stride", 1))
        if stride != self.stride:
            raise ValueError(
                f"{self._where}: key 'stride' is {self.stride}, but a {shown(self.spec.name)} generator with "
                f"{shown(self.spec.kwargs)} has stride {stride}"
            )


def _rejected(spec: NetworkSpec, where: str, err: Exception) -> ValueError:
    return ValueError(f"{where}: key 'network.kwargs': its generator arguments {shown(spec.kwargs)} are rejected: {err}")


def network_on_meta(spec: NetworkSpec, where: str) -> nn.Module | None:
    """The generator ``spec`` describes, built on the ``meta`` device (no memory), after the plugin and bounds checks.

    Args:
        spec: registry name and keyword arguments, read from an untrusted file.
        where: the file, for messages (``"checkpoint '/runs/x/export'"``).

    Returns ``None`` when the plugin's constructor cannot run on ``meta`` (it computes with its
    tensors): the bounds have been checked then, and loading the weights checks the rest.

    Raises:
        PluginError: no installed plugin provides ``spec.name``.
        ValueError: an argument is outside its declared range, unknown, or rejected.
    """
    registry = get_registry("generator")
    if spec.name not in registry:
        origin = f"plugin {shown(spec.plugin)}" if spec.plugin else "a plugin"
        if spec.distribution:
            origin += f" of the distribution {shown(spec.distribution)} (version {shown(spec.version)})"
        # Only the name, quoted: an install command copied from a file is not ours to suggest.
        raise PluginError(
            f"{where} needs the generator {shown(spec.name)}, which no installed plugin provides: "
            f"it was made by {origin}; install that distribution if you trust it. "
            f"Installed generators: {', '.join(registry.names())}"
        )
    try:
        registry.check_arguments(spec.name, spec.kwargs)
    except ArgumentOutOfBounds as err:
        raise ValueError(f"{where}: key {'network.kwargs.' + err.argument!r}: {err}") from None
    except (TypeError, ValueError) as err:
        raise _rejected(spec, where, err) from None
    try:
        with torch.device("meta"):
            return create_generator(spec.name, **spec.kwargs)
    except (TypeError, ValueError) as err:
        raise _rejected(spec, where, err) from None
    except Exception:  # noqa: BLE001 - a constructor that computes with tensors cannot run on meta
        return None


def check_tensors_fit(network: nn.Module, tensors: TensorHeader, where: str, no_fit: str) -> None:
    """Raise unless ``tensors`` (name → (dtype kind, shape)) are exactly ``network``'s state dict.

    ``network`` may live on ``meta``; ``no_fit`` starts the message ("the weights in X do not fit ...").
    Tied parameters (one tensor under several names) need to be present under one name only.
    """
    expected = network.state_dict(keep_vars=True)
    for name, (kind, shape) in tensors.items():
        tensor = expected.get(name)
        if tensor is None:
            detail = f"the file has a tensor {shown(name)} that the network does not have"
        elif shape != tuple(tensor.shape):
            detail = f"tensor {shown(name)} has shape {list(shape)} in the file, the network's has {list(tensor.shape)}"
        elif kind != dtype_kind(tensor.dtype):
            detail = f"tensor {shown(name)} is {shown(kind)} in the file, the network's is {dtype_kind(tensor.dtype)}"
        else:
            continue
        raise ValueError(f"{where}: {no_fit}: {detail}")
    names_of: dict[int, list[str]] = {}
    for name, tensor in expected.items():
        names_of.setdefault(id(tensor), []).append(name)
    missing = [names[0] for names in names_of.values() if not any(n in tensors for n in names)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(f"{where}: {no_fit}: the file has no tensor {missing[0]!r}{more}")


def _safetensors_dtype_kind(dtype: str) -> str:
    if dtype == "BOOL":
        return "bool"
    if dtype.startswith(("F", "BF")):
        return "floating point"
    if dtype.startswith(("I", "U")):
        return "integer"
    return dtype


def dtype_kind(dtype: torch.dtype) -> str:
    """``"floating point"``, ``"integer"``, ``"bool"`` or ``"complex"``: what a weight may be loaded from.

    A floating-point weight may be stored in any floating-point precision (loading converts it
    exactly or rounds it), never as integers.
    """
    if dtype == torch.bool:
        return "bool"
    if dtype.is_floating_point:
        return "floating point"
    return "complex" if dtype.is_complex else "integer"


def check_finite(name: str, tensor: torch.Tensor, where: str) -> None:
    """Raise a ``ValueError`` naming ``where`` and the tensor ``name`` if a floating-point ``tensor`` holds NaN or inf."""
    if not tensor.is_floating_point():
        return
    values = tensor if tensor.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) else tensor.float()
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        raise ValueError(
            f"{where}: tensor {shown(name)} has {int(bad.sum())} NaN or infinite values of {bad.numel()} "
            "(a diverged training run?); its translations would be NaN or black"
        )


def _tensors_header(tensors: dict[str, torch.Tensor]) -> TensorHeader:
    """Name → (dtype kind, shape) of loaded tensors, in name order (so messages name the same tensor each time)."""
    return {name: (dtype_kind(tensors[name].dtype), tuple(tensors[name].shape)) for name in sorted(tensors)}


def _directory_hint(path: Path) -> str:
    """What a directory without a checkpoint most likely is, and what to pass instead."""
    export = path / "export"
    if (export / CONFIG_FILE).is_file():
        return f"; it looks like a training run: its generator checkpoint is {str(export)!r}"
    if any(path.glob("*.ckpt")) or any(path.glob("checkpoints/*.ckpt")):
        return f"; it holds Lightning training checkpoints (.ckpt): {EXPORT_HINT}"
    return ""


def _read_config_dir(path: Path) -> tuple[dict[str, Any], Path]:
    config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for required in (config_path, weights_path):
        if not required.is_file():
            raise FileNotFoundError(
                f"checkpoint directory {str(path)!r} has no {required.name} (a handaug checkpoint holds "
                f"{WEIGHTS_FILE} and {CONFIG_FILE}){_directory_hint(path)}"
            )
    where = f"checkpoint config {str(config_path)!r}"
    config = validate_config(read_config_file(config_path, where), where, needs_sha256=True)
    if file_sha256(weights_path) != config["weights_sha256"]:
        raise ValueError(
            f"checkpoint {str(path)!r}: {WEIGHTS_FILE} does not match the SHA-256 recorded in {CONFIG_FILE} "
            "(the weights are corrupt, or were replaced without their config)"
        )
    return config, weights_path


def _read_config_file(path: Path) -> tuple[dict[str, Any], str]:
    """The config in the metadata of the single-file checkpoint ``path``, and the SHA-256 of the
    bytes it was read from (the file is read once: config and hash describe the same bytes)."""
    message = training_checkpoint_message(path)
    if message is not None:
        raise ValueError(message)
    where = f"checkpoint {str(path)!r}"
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{where} cannot be read: {err.strerror or err}") from None
    try:
        metadata = safetensors_metadata(data)
    except ValueError as err:
        raise ValueError(f"{where}: {path.name!r} is not a readable safetensors file ({err})") from None
    if METADATA_KEY not in metadata:
        raise ValueError(
            f"checkpoint {str(path)!r} is a safetensors file without handaug's config in its metadata "
            f"(key {METADATA_KEY!r}); it was not written by handaug.save_generator"
        )
    where = f"checkpoint {str(path)!r} (its {METADATA_KEY!r} metadata)"
    config = validate_config(parse_config(metadata[METADATA_KEY], where), where, needs_sha256=False)
    return config, hashlib.sha256(data).hexdigest()


def read_checkpoint(path: str | os.PathLike[str], *, verify: bool = True) -> GeneratorCheckpoint:
    """Read and validate a checkpoint (directory or ``.safetensors`` file) without building it.

    Args:
        path: the checkpoint directory or ``.safetensors`` file, or a Hugging Face Hub name
            ``hf://ORG/REPO[@REVISION][/SUBFOLDER]`` (fetched into the Hub cache by
            :func:`handaug.hub.fetch_checkpoint`, then checked like a local checkpoint).
        verify: also run :meth:`GeneratorCheckpoint.verify` (plugin, argument bounds, stride,
            weights header against the network on ``meta``, finite weights). Only the config
            is checked without it, and the generator's plugin need not be installed.

    Raises:
        FileNotFoundError: ``path`` or one of its files does not exist (on the Hub: or cannot be fetched).
        ImportError: an ``hf://`` name without ``huggingface_hub`` installed.
        PluginError: the generator's plugin is not installed (with ``verify``).
        ValueError: the files are corrupt, of another format or kind (a Lightning ``.ckpt`` is
            recognised without unpickling it, and the message says how to export its generator),
            from a newer handaug, or (with ``verify``) do not fit the network or hold NaN/inf;
            the message names the file and the key or tensor.
    """
    if is_hub_name(path):
        path = fetch_checkpoint(str(path))
    path = Path(path)
    if path.is_dir():
        config, weights = _read_config_dir(path)
        sha256 = config["weights_sha256"]
    elif path.is_file():
        config, sha256 = _read_config_file(path)
        weights = path
    else:
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    checkpoint = GeneratorCheckpoint(path, weights, config, sha256)
    if verify:
        checkpoint.verify()
    return checkpoint


def load_generator(path: str | os.PathLike[str], device: torch.device | str | None = None) -> nn.Module:
    """Rebuild the generator saved at ``path`` (directory, ``.safetensors`` or ``hf://`` name), in eval mode.

    No Lightning, no pickle: the network is created by registry name from the JSON config and
    its weights are read with safetensors. The result maps ``(B, 3, H, W)`` float in ``[-1, 1]``
    to the same shape and range.
    """
    return read_checkpoint(path).build(device)
