"""Lightning training checkpoints (``last.ckpt``): recognised without unpickling, and their generator exported.

``handaug-train`` writes two kinds of files. ``<run>/export/`` is the generator checkpoint
(safetensors + JSON) that ``SynthToReal``, ``handaug-translate``, ``handaug-eval`` and
``handaug-export`` read; ``<run>/checkpoints/last.ckpt`` is Lightning's checkpoint to resume
training from: torch's zip of pickles, holding both generators, both discriminators, optimiser
states and image pools. handaug never unpickles a file it is asked to *load a generator* from,
so :func:`training_checkpoint_message` recognises a ``.ckpt`` by its first bytes only and says
what to do instead.

:func:`export_training_checkpoint` turns a ``.ckpt`` of handaug-train into a generator
checkpoint, e.g. when training stopped before its end-of-fit export, or to take an earlier
epoch's generator. It reads the file with ``torch.load(weights_only=True, mmap=True)`` (torch's
restricted unpickler: tensors and plain containers only, nothing executed; tensors mapped, not
read) and checks the generator's name, arguments and tensor shapes exactly as a generator
checkpoint is checked before anything is allocated.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import torch

from handaug.untrusted_text import shown

ZIP_MAGIC = b"PK\x03\x04"
#: Pickle protocols 2 to 5 start with this opcode (torch.save's pre-1.6 format, plain pickles).
PICKLE_PROTO = b"\x80"
#: State-dict prefix of each generator in handaug's Lightning module (:class:`handaug.training.HGAN`).
GENERATOR_PREFIX = {"synthetic_to_real": "generator_s2r.", "real_to_synthetic": "generator_r2s."}

EXPORT_HINT = (
    "handaug-train writes the generator checkpoint to RUN/export/ when training ends; to export the "
    "generator of a training checkpoint, run `handaug-export RUN/checkpoints/last.ckpt --format handaug --out DIR`"
)


def _first_zip_entry(head: bytes) -> str | None:
    """Name of the first member from a zip's first local file header (no decompression, no unpickling)."""
    if len(head) < 30 or not head.startswith(ZIP_MAGIC):
        return None
    name_length = int.from_bytes(head[26:28], "little")
    return head[30 : 30 + name_length].decode("utf-8", "replace")


def training_checkpoint_message(path: str | os.PathLike[str]) -> str | None:
    """A message saying what ``path`` is if it is a torch zip or pickle file, else ``None``.

    Only the first bytes are read: a torch zip (``torch.save``, Lightning ``.ckpt``) starts with
    the zip magic and a first member ``<archive>/data.pkl``.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(512)
    first = _first_zip_entry(head)
    if first is not None:
        if first.endswith("data.pkl"):
            what = "a PyTorch zip of pickles (a Lightning training checkpoint such as last.ckpt, or a torch.save file)"
        else:
            what = "a zip archive"
    elif head.startswith(PICKLE_PROTO):
        what = "a Python pickle (an old torch.save file?)"
    else:
        return None
    shown_path = shlex.quote(str(path)) if str(path).isprintable() else "CKPT"
    command = f"handaug-export {shown_path} --format handaug --out DIR"
    return (
        f"checkpoint {str(path)!r} is {what}, not a handaug generator checkpoint (a directory with "
        f"generator.safetensors + config.json, or a .safetensors file); handaug never unpickles it. "
        f"handaug-train writes the generator checkpoint to RUN/export/ when training ends; if this is "
        f"handaug-train's training checkpoint, export its generator with `{command}`"
    )


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
    from handaug.checkpoint import DIRECTIONS, check_finite, check_tensors_fit, dtype_kind, network_on_meta, save_generator
    from handaug.registry import NetworkSpec, create_generator

    path = Path(ckpt)
    if not path.is_file():
        raise FileNotFoundError(f"training checkpoint {str(path)!r} does not exist")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    with open(path, "rb") as f:
        first = _first_zip_entry(f.read(512))
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
        from handaug.data.background import background_value

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
