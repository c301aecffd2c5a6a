"""Name → factory registries for generators, discriminators, losses and datasets.

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
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

KINDS: tuple[str, ...] = ("generator", "discriminator", "loss", "dataset", "feature_extractor")
SPEC_ATTRIBUTE = "handaug_spec"


class PluginError(ValueError):
    """A plugin registered something wrongly, or a name cannot be resolved to a plugin."""


@dataclass(frozen=True)
class RegistryEntry:
    """One registered name: what builds it and which plugin (and distribution) provided it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    distribution: str | None = None
    version: str | None = None

    @property
    def provider(self) -> str:
        """Human-readable origin, e.g. ``"handaug.plugins.resnet (handaug 0.1.0)"``."""
        if self.distribution:
            return f"{self.plugin} ({self.distribution} {self.version or '?'})"
        return self.plugin


@dataclass(frozen=True)
class NetworkSpec:
    """How a network was built: enough to build it again from a checkpoint's JSON config."""

    kind: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    plugin: str | None = None
    distribution: str | None = None
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "kwargs": copy.deepcopy(self.kwargs),
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSpec:
        return cls(
            kind=data["kind"],
            name=data["name"],
            kwargs=dict(data.get("kwargs") or {}),
            plugin=data.get("plugin"),
            distribution=data.get("distribution"),
            version=data.get("version"),
        )


class Registry:
    """The names of one kind (``"generator"``, ``"discriminator"``, ``"loss"``, ``"dataset"``,
    ``"feature_extractor"``).

    Plugins call :meth:`add` from their hook implementations; users go through
    :func:`create_generator` and friends rather than using a registry directly.
    """

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self._entries: dict[str, RegistryEntry] = {}
        # Set by the plugin manager while one plugin's hook runs, so that every name is
        # attributed to the plugin that added it.
        self._current: tuple[str, str | None, str | None] = ("<direct>", None, None)

    def add(self, name: str, factory: Callable[..., Any]) -> None:
        """Register ``factory`` (a class or callable taking keyword arguments) as ``name``.

        Raises:
            PluginError: ``name`` is already registered (the message names both plugins), or
                ``name``/``factory`` are not usable.
        """
        if not isinstance(name, str) or not name or name != name.strip() or ":" in name:
            raise PluginError(
                f"{self.kind} name must be a non-empty string without ':' or surrounding spaces, "
                f"got {name!r} from plugin {self._current[0]!r}"
            )
        if not callable(factory):
            raise PluginError(
                f"factory for {self.kind} {name!r} from plugin {self._current[0]!r} must be callable, "
                f"got {type(factory).__name__}"
            )
        plugin, dist, version = self._current
        if name in self._entries:
            other = self._entries[name]
            here = RegistryEntry(self.kind, name, factory, plugin, dist, version)
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by {other.provider} and by {here.provider}; "
                "uninstall one of them or ask its author to rename it"
            )
        self._entries[name] = RegistryEntry(self.kind, name, factory, plugin, dist, version)

    def get(self, name: str) -> RegistryEntry:
        """The entry registered as ``name``; a :class:`PluginError` listing known names if none."""
        try:
            return self._entries[name]
        except KeyError:
            raise PluginError(self._unknown_message(name)) from None

    def create(self, name: str, **kwargs: Any) -> Any:
        """Call the factory registered as ``name`` with ``kwargs``."""
        entry = self.get(name)
        try:
            return entry.factory(**kwargs)
        except TypeError as err:
            # A wrong keyword is the common mistake; say which network rejected which arguments.
            raise TypeError(
                f"{self.kind} {name!r} from {entry.provider} rejected its arguments "
                f"{sorted(kwargs)}: {err}"
            ) from err

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[RegistryEntry]:
        return [self._entries[n] for n in self.names()]

    def _remove_plugin(self, plugin: str) -> None:
        for name in [n for n, e in self._entries.items() if e.plugin == plugin]:
            del self._entries[name]

    def _unknown_message(self, name: str) -> str:
        from handaug.plugin_manager import broken_plugins

        known = self.names()
        msg = f"unknown {self.kind} name {name!r}; registered {self.kind}s: {', '.join(known) or '(none)'}"
        close = difflib.get_close_matches(str(name), known, n=1)
        if close:
            msg += f". Did you mean {close[0]!r}?"
        broken = broken_plugins()
        if broken:
            listed = "; ".join(b.describe() for b in broken)
            msg += f". These plugins failed to load and may provide it: {listed}"
        msg += ". Run `handaug plugins` to list what is installed."
        return msg

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"


def get_registry(kind: str) -> Registry:
    """The registry of ``kind``, filled by every loaded plugin."""
    from handaug.plugin_manager import get_registries

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


def network_spec(module: nn.Module) -> NetworkSpec | None:
    """The registry name and kwargs ``module`` was created with, or ``None`` if not made by the registry."""
    return getattr(module, SPEC_ATTRIBUTE, None)
