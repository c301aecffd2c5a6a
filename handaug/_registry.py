"""The registry container: names → factories for one kind, and the spec a created network keeps.

This module holds the data structures only and imports nothing from the rest of the plugin
machinery. :mod:`handaug.plugin_manager` fills one :class:`Registry` per kind in :data:`KINDS`
through the hooks of :mod:`handaug.hookspecs`; :mod:`handaug.registry` is the front end
(``create_generator`` and friends) and re-exports this module's public names, which is where
users and plugins import them from.

Bounds (:data:`Bound`) are checked before a factory runs, so a checkpoint config or a command
line cannot ask for a network that does not fit in memory.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from handaug.arguments import is_integer, is_real
from handaug.untrusted_text import shown

#: The kinds of names, one :class:`Registry` (and one hook of :mod:`handaug.hookspecs`) each.
KINDS: tuple[str, ...] = ("generator", "discriminator", "loss", "dataset", "feature_extractor")
#: The attribute under which a created network keeps its :class:`NetworkSpec`.
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
    :func:`handaug.registry.create_generator` and friends rather than using a registry directly.
    The plugin manager attributes names with :meth:`providing`, drops a failed plugin's names
    with :meth:`remove_plugin` and lists failed plugins in unknown-name errors through
    :meth:`note_broken_plugin`.
    """

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self._entries: dict[str, RegistryEntry] = {}
        self._current: tuple[str, str | None, str | None] = ("<direct>", None, None)
        self._broken: list[str] = []

    @contextmanager
    def providing(self, plugin: str, distribution: str | None = None, version: str | None = None) -> Iterator[None]:
        """Attribute every name :meth:`add` registers inside this ``with`` block to ``plugin``.

        ``distribution`` and ``version`` name the installed distribution that ships the plugin
        (``None`` when unknown); they appear in :attr:`RegistryEntry.provider` and in a created
        network's :class:`NetworkSpec`. Outside such a block names belong to ``"<direct>"``.
        """
        previous = self._current
        self._current = (plugin, distribution, version)
        try:
            yield
        finally:
            self._current = previous

    def remove_plugin(self, plugin: str) -> None:
        """Forget every name registered by ``plugin`` (e.g. after its hook raised half-way)."""
        for name in [n for n, e in self._entries.items() if e.plugin == plugin]:
            del self._entries[name]

    def note_broken_plugin(self, description: str) -> None:
        """Record that a plugin failed to load and may provide a missing name.

        ``description`` (e.g. ``"'my_nets' from distribution my-nets 1.0: ImportError: ..."``)
        is listed in the error :meth:`get` raises for an unknown name.
        """
        self._broken.append(description)

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
        """The registered names, sorted."""
        return sorted(self._entries)

    def entries(self) -> list[RegistryEntry]:
        """The registered entries, sorted by name."""
        return [self._entries[n] for n in self.names()]

    def _unknown_message(self, name: str) -> str:
        known = self.names()
        msg = f"unknown {self.kind} name {shown(name)}; registered {self.kind}s: {', '.join(known) or '(none)'}"
        close = difflib.get_close_matches(str(name), known, n=1) if len(str(name)) <= 100 else []
        if close:
            msg += f". Did you mean {close[0]!r}?"
        if self._broken:
            msg += f". These plugins failed to load and may provide it: {'; '.join(self._broken)}"
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
    is_number = is_integer if integral else is_real
    for v in values:
        if not is_number(v) or (not is_integer(v) and not math.isfinite(v)) or not low <= v <= high:
            raise ArgumentOutOfBounds(f"{owner} takes {argument} as {expected}, got {shown(value)}", argument)



def network_spec(module: nn.Module) -> NetworkSpec | None:
    """The registry name and kwargs ``module`` was created with, or ``None`` if not made by the registry.

    The front end stores the spec under :data:`SPEC_ATTRIBUTE` when it creates a network.
    """
    return getattr(module, SPEC_ATTRIBUTE, None)
