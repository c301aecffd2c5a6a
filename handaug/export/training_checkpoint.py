"""The generator of a Lightning training checkpoint of handaug-train, written as a generator checkpoint.

:func:`export_training_checkpoint` turns a ``.ckpt`` of handaug-train (``RUN/checkpoints/last.ckpt``,
see :mod:`handaug.lightning_checkpoint`) into a handaug generator checkpoint, e.g. when training
stopped before its end-of-fit export, or to take an earlier epoch's generator. It reads the file
with ``torch.load(weights_only=True, mmap=True)`` (torch's restricted unpickler: tensors and plain
containers only, nothing executed; tensors mapped, not read) and checks the generator's name,
arguments and tensor shapes exactly as a generator checkpoint is checked before anything is
allocated. Needs only handaug's core requirements (no Lightning, no albumentations).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from handaug.checkpoint import check_finite, check_tensors_fit, dtype_kind, network_on_meta, save_generator
from handaug.checkpoint_config import DIRECTIONS
from handaug.data.background import background_value
from handaug.lightning_checkpoint import first_zip_entry
from handaug.registry import NetworkSpec, create_generator
from handaug.untrusted_text import shown

#: State-dict prefix of each generator in handaug's Lightning module (:class:`handaug.training.HGAN`).
GENERATOR_PREFIX = {"synthetic_to_real": "generator_s2r.", "real_to_synthetic": "generator_r2s."}


def _checked(condition: bool, path: Path, what: str) -> None:
    if not condition:
        raise ValueError(f"training checkpoint {str(path)!r} is not a Lightning checkpoint of handaug-train: {what}")


def _json_summary(value: Any) -> Any:
    """``value`` as JSON values (tuples become lists; anything else unusual becomes a short string)."""
    return json.loads(json.dumps(value, default=lambda o: shown(o)))


def _had_masks(data: dict[str, Any]) -> bool:
    # The procedural hands always have masks; folders have them when a mask pattern was given.
    return any(data.get(f"{d}_masks") or data.get(d) == "procedural" for d in ("synthetic", "real"))


def export_training_checkpoint(
    ckpt: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    direction: str = "synthetic_to_real",
) -> Path:
    """Write the generator in a Lightning checkpoint of handaug-train as a handaug generator checkpoint.

    Args:
        ckpt: the ``.ckpt`` file (e.g. ``runs/hgan/checkpoints/last.ckpt``).
        out: a directory, or a file ending in ``.safetensors`` (see
            :func:`handaug.checkpoint.save_generator`); default: the directory
            ``<ckpt without .ckpt>-generator/`` beside ``ckpt``.
        direction: ``"synthetic_to_real"`` (``generator_s2r``, the one ``SynthToReal`` uses) or
            ``"real_to_synthetic"`` (``generator_r2s``).

    The config records the network from the module's hyper-parameters, the background, crop
    sizes and masks from the data module's (when the checkpoint has them), and the epoch,
    step and hyper-parameters as the training summary.

    Returns:
        Where the checkpoint was written.

    Raises:
        FileNotFoundError: ``ckpt`` does not exist.
        ValueError: it is not a torch zip checkpoint of handaug-train, or its generator's
            arguments, shapes or values (NaN/inf) are refused; the message names the file and key.
    """
    path = Path(ckpt)
    if not path.is_file():
        raise FileNotFoundError(f"training checkpoint {str(path)!r} does not exist")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    with open(path, "rb") as f:
        first = first_zip_entry(f.read(512))
    _checked(first is not None and first.endswith("data.pkl"), path, "it is not a PyTorch zip file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a corrupt or hostile file
        raise ValueError(
            f"training checkpoint {str(path)!r} could not be read with torch.load(weights_only=True): "
            f"{type(err).__name__}: {shown(str(err), limit=300)}"
        ) from None
    _checked(isinstance(data, dict), path, f"it holds a {type(data).__name__}, not a dict")
    state, hparams = data.get("state_dict"), data.get("hyper_parameters")
    _checked(isinstance(state, dict) and isinstance(hparams, dict), path, "it has no state_dict and hyper_parameters")
    name, kwargs = hparams.get("generator", "resnet"), hparams.get("generator_kwargs") or {}
    _checked(isinstance(name, str) and isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs), path,
             f"hyper_parameters.generator {shown(name)} / generator_kwargs {shown(kwargs)} are not a name and a dict")
    prefix = GENERATOR_PREFIX[direction]
    weights = {k[len(prefix):]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)}
    _checked(bool(weights) and all(isinstance(v, torch.Tensor) for v in weights.values()), path,
             f"its state_dict has no {prefix}* tensors")

    where = f"training checkpoint {str(path)!r}"
    spec = NetworkSpec("generator", name, dict(kwargs))
    no_fit = f"the {prefix}* weights do not fit a {shown(name)} generator with {shown(kwargs)}"
    network = network_on_meta(spec, where)
    if network is not None:
        check_tensors_fit(network, {k: (dtype_kind(v.dtype), tuple(v.shape)) for k, v in weights.items()}, where, no_fit)
    for key, tensor in weights.items():
        check_finite(prefix + key, tensor, where)
    generator = create_generator(name, **kwargs)
    try:
        generator.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{where}: {no_fit}: {shown(str(err), limit=300)}") from None

    datamodule = data.get("datamodule_hyper_parameters")
    datamodule = datamodule if isinstance(datamodule, dict) else {}
    background = None
    if "background" in datamodule:
        try:
            background = background_value(datamodule["background"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: key 'datamodule_hyper_parameters.background': {err}") from None
    image_size = {k: datamodule.get(key) for k, key in (("train", "crop_size"), ("val", "val_size")) if key in datamodule}
    summary = {
        "exported_from": path.name,
        "epoch": data.get("epoch"),
        "global_step": data.get("global_step"),
        "pytorch_lightning_version": data.get("pytorch-lightning_version"),
        "model": _json_summary(hparams),
        "data": _json_summary(datamodule),
    }
    if out is None:
        out = path.with_name(f"{path.stem}-generator")
    try:
        return save_generator(
            generator,
            out,
            direction=direction,
            image_size=image_size,
            background=background,
            trained_with_masks=bool(hparams.get("mask_generated", True)) and _had_masks(datamodule),
            training=_json_summary(summary),
        )
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
