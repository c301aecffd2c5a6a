"""Optional dependencies: the extras of ``pip install "handaug[EXTRA]"`` and the one-line error when one is missing.

``pip install handaug`` brings only what loading a checkpoint and running :class:`handaug.SynthToReal`
needs (torch, torchvision, numpy, safetensors, pluggy, OpenCV). Everything else is an extra, and
code that needs one asks for it here first:

- :func:`require` imports one module of an extra, or raises :class:`MissingExtraError` (an
  ``ImportError``) whose message is one line naming the extra to install;
- :func:`check_extra` checks, without importing anything, that every module of an extra is
  installed (the console scripts call it before they import their command).

:data:`EXTRA_MODULES` lists the top-level modules each extra provides; pyproject.toml states the
distributions and versions.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: Top-level modules each extra of pyproject.toml provides (``import`` names, not distribution names).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": ("lightning", "jsonargparse", "torchmetrics", "albumentations"),
    "albumentations": ("albumentations", "pydantic"),
    "kornia": ("kornia",),
    "eval": ("torchmetrics", "torch_fidelity", "matplotlib", "tqdm", "albumentations"),
    "hub": ("huggingface_hub", "yaml"),
    "onnx": ("onnx", "onnxruntime", "onnxscript"),
}


def install_hint(extra: str) -> str:
    """The pip requirement that installs ``extra``: ``pip install "handaug[EXTRA]"``."""
    return f'pip install "handaug[{extra}]"'


class MissingExtraError(ImportError):
    """A module of an extra is not installed. ``str(err)`` is one line that names the extra.

    Attributes:
        extra: the extra to install (a key of :data:`EXTRA_MODULES`).
        name: the module that could not be imported (as for any ``ImportError``).
    """

    def __init__(self, module: str, extra: str, needed_by: str) -> None:
        super().__init__(f"{needed_by} needs the {extra!r} extra ({module} is not installed): {install_hint(extra)}",
                         name=module)
        self.extra = extra


def _check_extra_name(extra: str) -> None:
    if extra not in EXTRA_MODULES:
        raise ValueError(f"extra must be one of {sorted(EXTRA_MODULES)}, got {extra!r}")


def require(module: str, extra: str, *, needed_by: str) -> ModuleType:
    """Import ``module`` (provided by ``extra``) and return it.

    Args:
        module: the import name, e.g. ``"albumentations"``.
        extra: the extra that installs it, e.g. ``"albumentations"`` or ``"train"``.
        needed_by: what needs it, shown in the message (a module or command name).

    Raises:
        MissingExtraError: ``module``, or a module it imports, is not installed; the message is one
            line naming ``extra`` and the missing module (also the error's ``name``).
        ValueError: ``extra`` is not one of :data:`EXTRA_MODULES`.
    """
    _check_extra_name(extra)
    try:
        return importlib.import_module(module)
    except ImportError as err:  # the message names what is missing: ``module`` or a module it needs
        raise MissingExtraError(err.name or module, extra, needed_by) from None


def check_extra(extra: str, *, needed_by: str) -> None:
    """Check that every module of ``extra`` is installed, importing none of them.

    Raises:
        MissingExtraError: the first module of ``EXTRA_MODULES[extra]`` that is not installed.
        ValueError: ``extra`` is not one of :data:`EXTRA_MODULES`.
    """
    _check_extra_name(extra)
    for module in EXTRA_MODULES[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken package
            found = False
        if not found:
            raise MissingExtraError(module, extra, needed_by)
