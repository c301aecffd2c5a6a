"""The SilNet checkpoint format: a directory with safetensors weights and a JSON config. Nothing is unpickled.

``handaug-train-silnet --out DIR`` writes it, ``GeometricConsistencyLoss(silnet_checkpoint=DIR)``
loads it frozen::

    DIR/silnet.safetensors     every tensor of the SilNet state dict (BatchNorm statistics included)
    DIR/config.json            {"format": "handaug.silnet", "format_version": 1, "handaug_version": "...",
                                "network": {"base_channels": 64, "depth": 2, "conv_bias": true},
                                "normalization": {"range": [-1.0, 1.0]}, "training": {...},
                                "weights_sha256": "..."}

Both files are written atomically (temporary name, then rename; the weights first, the config
last), so a directory with a config always has the weights it describes; the SHA-256 in the
config ties them together. Reading checks the config's keys and the shape's ranges, refuses a
weights file larger than that shape's tensors could fill before reading it, and loads with
``strict`` names and shapes and finite values only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from handaug._version import __version__
from handaug.atomic_files import file_sha256
from handaug.checkpoint import check_finite
from handaug.networks.silnet import SILNET_BOUNDS, SilNet
from handaug.safetensors_files import (
    json_ready,
    read_config_file,
    write_tensor_directory,
)
from handaug.untrusted_text import shown

__all__ = ["SilNetCheckpoint", "load_silnet", "read_silnet_checkpoint", "save_silnet"]

FORMAT = "handaug.silnet"
FORMAT_VERSION = 1
WEIGHTS_FILE = "silnet.safetensors"
CONFIG_FILE = "config.json"
#: Room for the safetensors header beyond the tensors' bytes.
_HEADER_ALLOWANCE = 1 << 20


def save_silnet(silnet: SilNet, path: str | os.PathLike[str], *, training: dict[str, Any] | None = None) -> Path:
    """Write ``silnet`` (its shape and every tensor of its state dict) as a checkpoint directory ``path``.

    Args:
        silnet: the network.
        path: the directory (created if needed; earlier files in it are replaced).
        training: free-form JSON summary of how it was trained.

    Raises:
        ValueError: ``silnet`` is not a :class:`SilNet`, a tensor holds NaN or infinite values (a
            diverged training run: nothing is written), or ``training`` holds non-JSON values.
    """
    if not isinstance(silnet, SilNet):
        raise ValueError(f"silnet must be a handaug SilNet, got {type(silnet).__name__}")
    summary = json_ready(training or {}, "training", finite=True)
    for name, tensor in silnet.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(
                f"SilNet tensor {name!r} has {bad} NaN or infinite values of {tensor.numel()} (training diverged: lower "
                f"the learning rate or momentum); nothing was written to {str(path)!r}"
            )
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "handaug_version": __version__,
        "network": dict(silnet.shape),
        "normalization": {"range": [-1.0, 1.0]},
        "training": summary,
    }
    # The recorded SHA-256 is that of the bytes written (see handaug.safetensors_files).
    return write_tensor_directory(path, silnet.state_dict(), config, format=FORMAT, weights_file=WEIGHTS_FILE, config_file=CONFIG_FILE)


@dataclass(frozen=True)
class SilNetCheckpoint:
    """A SilNet checkpoint directory with its validated config (see :func:`read_silnet_checkpoint`)."""

    path: Path
    config: dict[str, Any]

    @property
    def shape(self) -> dict[str, Any]:
        return dict(self.config["network"])

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_FILE

    def build(self) -> SilNet:
        """The SilNet with its weights loaded, in eval mode, on the CPU (gradients left on: freeze it where needed).

        Raises:
            ValueError: the weights file is too large for the shape, unreadable, does not hold
                exactly the shape's tensors, or holds NaN/inf.
        """
        where = f"SilNet checkpoint {str(self.path)!r}"
        silnet = SilNet(**self.shape)
        expected = sum(t.numel() * t.element_size() for t in silnet.state_dict().values())
        size = self.weights_path.stat().st_size
        if size > expected + _HEADER_ALLOWANCE:
            raise ValueError(f"{where}: {WEIGHTS_FILE} has {size} bytes, more than a SilNet of {self.shape} can fill ({expected})")
        try:
            state = load_file(str(self.weights_path), device="cpu")
            silnet.load_state_dict(state, strict=True)
        except (SafetensorError, OSError, RuntimeError) as err:
            raise ValueError(f"{where}: the weights do not fit a SilNet of {self.shape}: {shown(str(err), limit=300)}") from None
        for name, tensor in silnet.state_dict().items():
            check_finite(name, tensor, where)
        return silnet.eval()


def _check_config(config: Any, where: str) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ValueError(f"{where} must hold a JSON object, got {type(config).__name__}")
    if config.get("format") != FORMAT:
        raise ValueError(f"{where}: key 'format' must be {FORMAT!r} (a SilNet checkpoint), got {shown(config.get('format'))}")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"{where}: key 'format_version' must be 1 to {FORMAT_VERSION} (a newer handaug wrote it?), got {shown(version)}")
    network = config.get("network")
    if not isinstance(network, dict) or set(network) != {"base_channels", "depth", "conv_bias"}:
        raise ValueError(f"{where}: key 'network' must hold base_channels, depth and conv_bias, got {shown(network)}")
    for key, (low, high) in SILNET_BOUNDS.items():
        value = network[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{where}: key 'network.{key}' must be an integer in [{low}, {high}], got {shown(value)}")
    if not isinstance(network["conv_bias"], bool):
        raise ValueError(f"{where}: key 'network.conv_bias' must be true or false, got {shown(network['conv_bias'])}")
    digest = config.get("weights_sha256")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{where}: key 'weights_sha256' must be 64 lowercase hex digits, got {shown(digest)}")
    return config


def read_silnet_checkpoint(path: str | os.PathLike[str]) -> SilNetCheckpoint:
    """Read and validate the config of the SilNet checkpoint directory ``path`` (no weights loaded yet).

    Raises:
        FileNotFoundError: ``path`` is not a directory, or a file is missing (the message names it).
        ValueError: the config is corrupt, of another format, out of range, or the weights do
            not match its SHA-256.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"SilNet checkpoint {str(path)!r} is not a directory: expected the --out folder of handaug-train-silnet "
            f"({WEIGHTS_FILE} and {CONFIG_FILE})"
        )
    for required in (path / CONFIG_FILE, path / WEIGHTS_FILE):
        if not required.is_file():
            raise FileNotFoundError(f"SilNet checkpoint {str(path)!r} has no {required.name} (it holds {WEIGHTS_FILE} and {CONFIG_FILE})")
    where = f"SilNet checkpoint config {str(path / CONFIG_FILE)!r}"
    config = _check_config(read_config_file(path / CONFIG_FILE, where), where)
    if file_sha256(path / WEIGHTS_FILE) != config["weights_sha256"]:
        raise ValueError(
            f"SilNet checkpoint {str(path)!r}: {WEIGHTS_FILE} does not match the SHA-256 in {CONFIG_FILE} "
            "(corrupt, or replaced without its config)"
        )
    return SilNetCheckpoint(path, config)


def load_silnet(path: str | os.PathLike[str], device: torch.device | str | None = None) -> SilNet:
    """The SilNet saved at ``path``, in eval mode (see :func:`read_silnet_checkpoint` for the errors)."""
    silnet = read_silnet_checkpoint(path).build()
    return silnet if device is None else silnet.to(device)
