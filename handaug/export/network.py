"""The generator network of a checkpoint as ONNX or TorchScript, for runtimes without Python handaug.

The exported graph is the bare generator: input ``image`` ``(B, 3, H, W)`` float32 in
``[-1, 1]`` (RGB), output ``translated`` of the same shape in ``[-1, 1]``. Batch, height and
width are dynamic; height and width must be multiples of the generator's stride (recorded in
the metadata, with the whole handaug config). Normalisation, padding and mask compositing are
the caller's job, as ``SynthToReal`` does them in Python.

- ONNX (``pip install handaug[onnx]`` for ``onnx``/``onnxruntime``/``onnxscript``): torch's
  dynamo exporter with dynamic shapes; the config is in the model's ``metadata_props`` under
  ``handaug_config``.
- TorchScript: a trace, with the config as the extra file ``handaug_config.json``. PyTorch has
  deprecated TorchScript; prefer ONNX for new deployments.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from pathlib import Path
from typing import Literal

import torch

from handaug.atomic_files import replaced_atomically
from handaug.checkpoint import read_checkpoint

ExportFormat = Literal["onnx", "torchscript"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def export_generator(
    ckpt: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    format: ExportFormat = "onnx",
    *,
    example_size: int = 128,
    opset: int | None = None,
) -> Path:
    """Write the generator of ``ckpt`` as ``format`` to ``out`` (default: beside the checkpoint).

    Args:
        ckpt: a handaug generator checkpoint (directory or ``.safetensors``).
        out: output file; default ``<ckpt>/generator.onnx`` / ``generator.pt`` for a directory
            checkpoint, ``<stem>.onnx`` / ``.pt`` beside a file checkpoint.
        format: ``"onnx"`` or ``"torchscript"``.
        example_size: side of the example input used for tracing (a multiple of the stride).
        opset: ONNX opset version (default: the exporter's).

    Raises:
        ValueError: unknown ``format`` or an ``example_size`` that is not a multiple of the stride.
        ImportError: ONNX export without the ``onnx`` extra installed.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    checkpoint = read_checkpoint(ckpt)
    stride = max(checkpoint.stride, 1)
    if example_size % stride:
        raise ValueError(f"example_size must be a multiple of the generator's stride {stride}, got {example_size}")
    if out is None:
        base = checkpoint.path / "generator" if checkpoint.path.is_dir() else checkpoint.path.with_suffix("")
        out = base.with_suffix(SUFFIX[format])
    out = Path(out)
    generator = checkpoint.build("cpu")
    example = torch.zeros(1, 3, example_size, example_size)
    config = json.dumps(checkpoint.config)

    if format == "onnx":
        try:  # deferred: onnx and onnxscript are the [onnx] extra
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as err:
            raise ImportError("ONNX export needs the onnx extra: pip install 'handaug[onnx]'") from err
        batch = torch.export.Dim("batch", min=1, max=4096)
        height = torch.export.Dim("height_steps", min=1, max=8192 // stride)
        width = torch.export.Dim("width_steps", min=1, max=8192 // stride)
        dims = {0: batch, 2: stride * height, 3: stride * width}
        arg_name = next(iter(inspect.signature(generator.forward).parameters))

        program = torch.onnx.export(
            generator, (example,), dynamo=True, input_names=["image"], output_names=["translated"],
            dynamic_shapes={arg_name: dims}, opset_version=opset, external_data=False, verbose=False,
        )
        program.model.metadata_props["handaug_config"] = config
        with replaced_atomically(out) as tmp:
            program.save(tmp)
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings: the trace is checked by tests
        with torch.no_grad():
            traced = torch.jit.trace(generator, example, check_trace=False)
    with replaced_atomically(out) as tmp:
        torch.jit.save(traced, tmp, _extra_files={"handaug_config.json": config})
    return out
