"""The one pluggy ``PluginManager`` of handaug, and the registries it fills.

It sits between the registry container (:mod:`handaug._registry`, below) and the ``create_*``
front end (:mod:`handaug.registry`, above), and uses the container through its public methods.

Loading order (the first time any registry is needed):

1. handaug's own plugins (:data:`BUILTIN_PLUGINS`), registered exactly as a third party's are;
2. modules named in the ``HANDAUG_PLUGINS`` environment variable (comma-separated), always;
3. every entry point of the ``handaug`` group of the installed distributions, unless
   ``HANDAUG_DISABLE_PLUGIN_AUTOLOAD`` is set to a non-empty value (like pytest's
   ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``);
4. ``check_pending()``: a hook implementation with a misspelt name is an error.

Entry points are loaded one by one (pluggy's ``load_setuptools_entrypoints`` stops at the first
failure): a plugin that fails to import is reported with its distribution name in a warning and
in ``handaug plugins``, and only becomes an error when a name nobody else provides is asked for.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

from handaug import hookspecs
from handaug._registry import KINDS, PluginError, Registry
from handaug._version import __version__

ENTRY_POINT_GROUP = "handaug"
DISABLE_AUTOLOAD_ENV = "HANDAUG_DISABLE_PLUGIN_AUTOLOAD"
PLUGINS_ENV = "HANDAUG_PLUGINS"

#: handaug's own plugin modules, registered before anything else.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "handaug.plugins.resnet",
    "handaug.plugins.patchgan",
    "handaug.plugins.perceptual",
    "handaug.plugins.geocongan",
    "handaug.plugins.structure",
    "handaug.plugins.colour_statistics",
    "handaug.data.builtin",
    "handaug.metrics.builtin",
)

_HOOK_OF_KIND = {
    "generator": "handaug_register_generators",
    "discriminator": "handaug_register_discriminators",
    "loss": "handaug_register_losses",
    "dataset": "handaug_register_datasets",
    "feature_extractor": "handaug_register_feature_extractors",
}


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its name in the manager and the distribution that ships it."""

    name: str
    distribution: str | None
    version: str | None
    builtin: bool


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that failed to import or whose registration hook raised."""

    name: str
    distribution: str | None
    version: str | None
    error: str

    def describe(self) -> str:
        dist = f" from distribution {self.distribution} {self.version or ''}".rstrip() if self.distribution else ""
        return f"{self.name!r}{dist}: {self.error}"


@dataclass
class PluginState:
    manager: pluggy.PluginManager
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)
    registries: dict[str, Registry] = field(default_factory=dict)


_state: PluginState | None = None
_lock = threading.RLock()


def _load_state() -> PluginState:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    state = PluginState(manager)

    for module_name in BUILTIN_PLUGINS:
        module = importlib.import_module(module_name)  # a broken built-in is a bug: let it raise
        manager.register(module, name=module_name)
        state.plugins[module_name] = PluginInfo(module_name, "handaug", __version__, builtin=True)

    for module_name in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        if manager.has_plugin(module_name):
            continue
        try:
            manager.register(importlib.import_module(module_name), name=module_name)
        except Exception as err:  # noqa: BLE001 - reported, not fatal
            _report_broken(state, module_name, None, None, err)
            continue
        state.plugins[module_name] = PluginInfo(module_name, None, None, builtin=False)

    if not os.environ.get(DISABLE_AUTOLOAD_ENV):
        _load_entry_points(state)

    manager.check_pending()
    _fill_registries(state)
    for registry in state.registries.values():  # an unknown name's error lists what failed to load
        for broken in state.broken:
            registry.note_broken_plugin(broken.describe())
    return state


def _load_entry_points(state: PluginState) -> None:
    manager = state.manager
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or ep.name in seen:
                continue
            seen.add(ep.name)
            if manager.has_plugin(ep.name) or manager.is_blocked(ep.name):
                continue
            dist_name = dist.metadata["name"]
            try:
                plugin = ep.load()
                manager.register(plugin, name=ep.name)
            except Exception as err:  # noqa: BLE001 - reported, not fatal
                _report_broken(state, ep.name, dist_name, dist.version, err)
                continue
            state.plugins[ep.name] = PluginInfo(ep.name, dist_name, dist.version, builtin=False)


def _report_broken(state: PluginState, name: str, dist: str | None, version: str | None, err: BaseException) -> None:
    broken = BrokenPlugin(name, dist, version, f"{type(err).__name__}: {err}")
    state.broken.append(broken)
    warnings.warn(f"handaug plugin {broken.describe()} (its networks are unavailable)", RuntimeWarning, stacklevel=3)


def _fill_registries(state: PluginState) -> None:
    for kind in KINDS:
        registry = Registry(kind)
        caller = getattr(state.manager.hook, _HOOK_OF_KIND[kind])
        # Call each implementation on its own so every name is attributed to its plugin and one
        # plugin's failure does not hide the others.
        for impl in caller.get_hookimpls():
            info = state.plugins.get(impl.plugin_name)
            dist, version = (info.distribution, info.version) if info else (None, None)
            try:
                with registry.providing(impl.plugin_name, dist, version):
                    impl.function(registry=registry)
            except PluginError:
                raise
            except Exception as err:  # noqa: BLE001 - reported, not fatal
                registry.remove_plugin(impl.plugin_name)
                _report_broken(state, impl.plugin_name, dist, version, err)
        state.registries[kind] = registry


def get_plugin_state() -> PluginState:
    """Load every plugin once (thread-safe) and return the manager, plugin list and registries."""
    global _state
    with _lock:
        if _state is None:
            _state = _load_state()
        return _state


def get_plugin_manager() -> pluggy.PluginManager:
    """The pluggy ``PluginManager`` with every plugin loaded."""
    return get_plugin_state().manager


def get_registries() -> dict[str, Registry]:
    """Every kind's registry (keys: :data:`handaug._registry.KINDS`), filled by every loaded plugin."""
    return get_plugin_state().registries


def broken_plugins() -> list[BrokenPlugin]:
    """Plugins that failed to load; empty before loading has happened."""
    return list(_state.broken) if _state is not None else []


def reset_plugins() -> None:
    """Forget every loaded plugin; the next registry access loads them again.

    For tests and for programs that install a plugin while running.
    """
    global _state
    with _lock:
        _state = None


def plugin_table() -> list[dict[str, Any]]:
    """One row per registered name, for ``handaug plugins``."""
    state = get_plugin_state()
    rows = []
    for kind in KINDS:
        for entry in state.registries[kind].entries():
            rows.append(
                {
                    "kind": kind,
                    "name": entry.name,
                    "plugin": entry.plugin,
                    "distribution": entry.distribution or "-",
                    "version": entry.version or "-",
                }
            )
    return rows
