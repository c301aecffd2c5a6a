"""Pretrained weights (VGG16 for the perceptual discriminator, InceptionV3 for FID): where they are looked for.

Nothing is downloaded at import time. A network that needs pretrained weights asks
:func:`load_pretrained` for them when it is built; the file is taken from

1. an explicit path given by the user (``vgg_weights="/data/vgg16-397923af.pth"``), or
2. the torch hub cache, ``$TORCH_HOME/hub/checkpoints/<file>`` (where torchvision puts it), or
3. a download into that cache, unless ``HANDAUG_OFFLINE`` is set (to anything but empty, ``0``,
   ``false``, ``no`` or ``off``).

When none of these works, the error names the file, the folder to put it in, and the URL.
Weights are read with safetensors or ``torch.load(..., weights_only=True)``: never unpickled.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from handaug.atomic_files import replaced_atomically

OFFLINE_ENV = "HANDAUG_OFFLINE"
#: Values of an on/off environment variable that mean off (compared in lower case, stripped).
OFF_VALUES: tuple[str, ...] = ("", "0", "false", "no", "off")


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is on: set to anything but empty, 0, false, no or off."""
    return os.environ.get(name, "").strip().lower() not in OFF_VALUES


def offline_requested() -> bool:
    """Whether ``HANDAUG_OFFLINE`` asks for no downloads (``HANDAUG_OFFLINE=0`` does not)."""
    return env_flag(OFFLINE_ENV)


@dataclass(frozen=True)
class PretrainedFile:
    """A published weights file: its canonical file name, where it is published, and what it is."""

    filename: str
    url: str
    description: str

    @property
    def hash_prefix(self) -> str | None:
        """torchvision's file names end in the first hex digits of the file's SHA-256."""
        stem = self.filename.rsplit(".", 1)[0]
        tail = stem.rsplit("-", 1)[-1]
        return tail if len(tail) >= 6 and all(c in "0123456789abcdef" for c in tail) else None


VGG16_IMAGENET = PretrainedFile(
    filename="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    description="VGG16 ImageNet weights (torchvision VGG16_Weights.IMAGENET1K_V1)",
)


def hub_checkpoint_dir() -> Path:
    """The folder torchvision caches weights in: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` file or a ``.pth``/``.pt`` file (weights only).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable state dict (corrupt, truncated, or pickled objects
            other than tensors).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"weights file {str(path)!r} could not be read as a state dict: {type(err).__name__}: {err}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {str(path)!r} does not hold a state dict (a mapping of names to tensors)")
    return state


def _download(spec: PretrainedFile, destination: Path, timeout: float = 30.0) -> None:
    digest = hashlib.sha256()
    with replaced_atomically(destination, suffix=".part") as tmp:
        with open(tmp, "wb") as out, urllib.request.urlopen(spec.url, timeout=timeout) as response:  # noqa: S310
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
        prefix = spec.hash_prefix
        if prefix and not digest.hexdigest().startswith(prefix):
            raise ValueError(f"downloaded {spec.filename} has SHA-256 {digest.hexdigest()[:12]}..., expected {prefix}...")


def missing_weights_message(spec: PretrainedFile, argument: str, reason: str) -> str:
    folder = hub_checkpoint_dir()
    return (
        f"{spec.description} are not available ({reason}). Put the file {spec.filename} in {folder} "
        f"(for example `mkdir -p {folder} && wget {spec.url} -P {folder}`), or set TORCH_HOME to a "
        f"folder whose hub/checkpoints/ holds it, or pass its path as {argument}='/path/to/{spec.filename}'."
    )


def load_pretrained(spec: PretrainedFile, *, argument: str, allow_download: bool = True) -> dict[str, torch.Tensor]:
    """The state dict of ``spec`` from the hub cache, downloading it there if allowed.

    Args:
        spec: which published file.
        argument: the user-facing option that takes a path instead (named in the error).
        allow_download: try the download when the file is not cached (also disabled by the
            ``HANDAUG_OFFLINE`` environment variable).

    Raises:
        FileNotFoundError: the file is neither cached nor downloadable; the message says where
            to put it.
    """
    cached = hub_checkpoint_dir() / spec.filename
    if not cached.is_file():
        if not allow_download or offline_requested():
            raise FileNotFoundError(missing_weights_message(spec, argument, f"{cached} does not exist and downloads are off"))
        try:
            _download(spec, cached)
        except Exception as err:  # noqa: BLE001 - any network failure becomes the same clear message
            raise FileNotFoundError(
                missing_weights_message(spec, argument, f"{cached} does not exist and the download failed: {err}")
            ) from err
    return load_state_dict_file(cached)
