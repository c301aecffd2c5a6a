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
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from handaug.untrusted_text import shown

KINDS: tuple[str, ...] = ("generator", "discriminator", "loss", "dataset", "feature_extractor")
SPEC_ATTRIBUTE = "handaug_spec"

#: Inclusive ``(low, high)`` range of one numeric constructor argument. Integer bounds ask for an
#: ``int``; float bounds accept any finite number. A list or tuple argument is checked element-wise.
Bound = tuple[int, int] | tuple[float, float]


class PluginError(ValueError):
    """A plugin registered something wrongly, or a name cannot be resolved to a plugin."""


class ArgumentOutOfBounds(ValueError):
    """A constructor argument is outside the range its network declares (:attr:`argument` names it)."""

    def __init__(self, message: str, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


@dataclass(frozen=True)
class RegistryEntry:
    """One registered name: what builds it and which plugin (and distribution) provided it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    distribution: str | None = None
    version: str | None = None
    bounds: Mapping[str, Bound] = field(default_factory=dict)

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

    def add(self, name: str, factory: Callable[..., Any], *, bounds: Mapping[str, Bound] | None = None) -> None:
        """Register ``factory`` (a class or callable taking keyword arguments) as ``name``.

        ``bounds`` maps numeric constructor arguments to their inclusive ``(low, high)`` range,
        e.g. ``{"ngf": (1, 1024), "n_blocks": (0, 64)}``. Every creation checks them first, so a
        checkpoint config or a command line cannot ask for a network that does not fit in memory.

        Raises:
            PluginError: ``name`` is already registered (the message names both plugins), or
                ``name``/``factory``/``bounds`` are not usable.
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
        checked_bounds = _checked_bounds(bounds, f"{self.kind} {name!r} from plugin {plugin!r}")
        here = RegistryEntry(self.kind, name, factory, plugin, dist, version, checked_bounds)
        if name in self._entries:
            other = self._entries[name]
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by {other.provider} and by {here.provider}; "
                "uninstall one of them or ask its author to rename it"
            )
        self._entries[name] = here

    def get(self, name: str) -> RegistryEntry:
        """The entry registered as ``name``; a :class:`PluginError` listing known names if none."""
        try:
            return self._entries[name]
        except KeyError:
            raise PluginError(self._unknown_message(name)) from None

    def check_arguments(self, name: str, kwargs: Mapping[str, Any]) -> None:
        """Check ``kwargs`` for the factory of ``name`` without calling it.

        Raises:
            PluginError: ``name`` is not registered.
            TypeError: the factory takes no argument of one of these names.
            ArgumentOutOfBounds: an argument is outside its declared range or of the wrong type.
        """
        entry = self.get(name)
        try:
            signature = inspect.signature(entry.factory)
        except (TypeError, ValueError):  # some builtins have none: the call itself will tell
            signature = None
        if signature is not None:
            try:
                signature.bind(**kwargs)
            except TypeError as err:
                raise TypeError(
                    f"{self.kind} {name!r} from {entry.provider} rejected its arguments "
                    f"{shown(sorted(kwargs))}: {err}"
                ) from None
        for argument, (low, high) in entry.bounds.items():
            if argument in kwargs:
                _check_bound(f"{self.kind} {name!r}", argument, kwargs[argument], low, high)

    def create(self, name: str, **kwargs: Any) -> Any:
        """Call the factory registered as ``name`` with ``kwargs`` (checked first, see :meth:`check_arguments`)."""
        entry = self.get(name)
        self.check_arguments(name, kwargs)
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
        msg = f"unknown {self.kind} name {shown(name)}; registered {self.kind}s: {', '.join(known) or '(none)'}"
        close = difflib.get_close_matches(str(name), known, n=1) if len(str(name)) <= 100 else []
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


def _checked_bounds(bounds: Mapping[str, Bound] | None, owner: str) -> dict[str, Bound]:
    checked: dict[str, Bound] = {}
    for argument, bound in (bounds or {}).items():
        ok = (
            isinstance(argument, str)
            and isinstance(bound, tuple)
            and len(bound) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bound)
            and bound[0] <= bound[1]
        )
        if not ok:
            raise PluginError(f"bounds of {owner} must map argument names to (low, high) numbers, got {argument!r}: {bound!r}")
        checked[argument] = bound
    return checked


def _check_bound(owner: str, argument: str, value: Any, low: float, high: float) -> None:
    integral = isinstance(low, int) and isinstance(high, int)
    expected = f"{'an integer' if integral else 'a number'} in [{low}, {high}]"
    values = value if isinstance(value, (list, tuple)) else [value]
    if isinstance(value, (list, tuple)):
        expected = f"a list of {'integers' if integral else 'numbers'} in [{low}, {high}]"
    for v in values:
        number_type = int if integral else (int, float)
        if (
            isinstance(v, bool)
            or not isinstance(v, number_type)
            or (isinstance(v, float) and not math.isfinite(v))
            or not low <= v <= high
        ):
            raise ArgumentOutOfBounds(f"{owner} takes {argument} as {expected}, got {shown(value)}", argument)


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
