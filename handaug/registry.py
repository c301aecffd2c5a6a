"""Name → factory registries for generators, discriminators, losses and datasets: the front end.

The core of handaug never imports a concrete network: it asks for one by name here. The
registries are filled by plugins (see :mod:`handaug.hookspecs`) the first time one of them is
needed; handaug's own networks are plugins like any other.

>>> from handaug.registry import create_generator
>>> g = create_generator("resnet", n_blocks=4, ngf=8)
>>> network_spec(g).name
'resnet'

Every network made by :func:`create_generator` / :func:`create_discriminator` remembers its
registry name and keyword arguments (:func:`network_spec`), which is what a checkpoint stores
to rebuild it later without pickling anything.

Layers, like timm's ``_factory`` over ``_registry``: this module (``create_*``,
:func:`get_registry`) sits on :mod:`handaug.plugin_manager`, which loads the plugins and fills
the containers of :mod:`handaug._registry`. The container's public names (:class:`Registry`,
:class:`NetworkSpec`, :class:`PluginError`, ...) are re-exported here, the path to import them from.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from handaug._registry import (
    KINDS,
    SPEC_ATTRIBUTE,
    ArgumentOutOfBounds,
    Bound,
    NetworkSpec,
    PluginError,
    Registry,
    RegistryEntry,
    network_spec,
)
from handaug.plugin_manager import get_registries

__all__ = [
    "KINDS",
    "SPEC_ATTRIBUTE",
    "ArgumentOutOfBounds",
    "Bound",
    "NetworkSpec",
    "PluginError",
    "Registry",
    "RegistryEntry",
    "create_dataset",
    "create_discriminator",
    "create_feature_extractor",
    "create_generator",
    "create_loss",
    "get_registry",
    "network_spec",
]


def get_registry(kind: str) -> Registry:
    """The registry of ``kind``, filled by every loaded plugin."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return get_registries()[kind]


def _create_network(kind: str, name: str, kwargs: dict[str, Any]) -> nn.Module:
    registry = get_registry(kind)
    entry = registry.get(name)
    module = registry.create(name, **kwargs)
    if not isinstance(module, nn.Module):
        raise PluginError(
            f"{kind} {name!r} from {entry.provider} returned {type(module).__name__}, expected a torch.nn.Module"
        )
    spec = NetworkSpec(kind, name, copy.deepcopy(kwargs), entry.plugin, entry.distribution, entry.version)
    object.__setattr__(module, SPEC_ATTRIBUTE, spec)
    return module


def create_generator(name: str, **kwargs: Any) -> nn.Module:
    """Build the generator registered as ``name`` (e.g. ``"resnet"``) with ``kwargs``.

    The returned module maps ``(B, 3, H, W)`` float in ``[-1, 1]`` to the same shape and range,
    and remembers ``name`` and ``kwargs`` (see :func:`network_spec`).
    """
    return _create_network("generator", name, kwargs)


def create_discriminator(name: str, **kwargs: Any) -> nn.Module:
    """Build the discriminator registered as ``name`` (``"perceptual"``, ``"patch"``, ``"pixel"``, ...)."""
    return _create_network("discriminator", name, kwargs)


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the extra generator loss registered as ``name`` (see :func:`handaug.hookspecs.handaug_register_losses`)."""
    return _create_network("loss", name, kwargs)


def create_dataset(name: str, root: str | None = None, **kwargs: Any) -> Any:
    """Build the dataset reader registered as ``name`` over the files under ``root``."""
    return get_registry("dataset").create(name, root=root, **kwargs)


def create_feature_extractor(name: str, **kwargs: Any) -> nn.Module:
    """Build the FID/KID feature extractor registered as ``name`` (``(B, 3, H, W)`` in ``[0, 1]`` → ``(B, d)``)."""
    return _create_network("feature_extractor", name, kwargs)
