"""Exporting generators: every way handaug writes a generator out, one module each.

- :mod:`handaug.export.network`: :func:`export_generator`, a checkpoint's network alone as ONNX
  or TorchScript (``handaug-export --format onnx|torchscript``);
- :mod:`handaug.export.hub_folder`: :func:`export_hub_folder`, a checkpoint as a folder to upload
  as a Hugging Face Hub model repository, with :func:`model_card` (``--format hub``);
- :mod:`handaug.export.training_checkpoint`: :func:`export_training_checkpoint`, the generator of
  a Lightning training checkpoint of handaug-train as a generator checkpoint (``--format handaug``).

Each reads its input with :mod:`handaug.checkpoint` (or :mod:`handaug.lightning_checkpoint`);
nothing below this package imports it.
"""

from handaug.export.hub_folder import export_hub_folder, model_card
from handaug.export.network import FORMATS, ExportFormat, export_generator
from handaug.export.training_checkpoint import export_training_checkpoint

__all__ = ["FORMATS", "ExportFormat", "export_generator", "export_hub_folder", "export_training_checkpoint", "model_card"]
