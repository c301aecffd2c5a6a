"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and break when they should.

import-linter reads one package folder, but handaug installs from three (``handaug/``, and
``plugins/`` and ``integrations/`` as ``handaug.plugins`` and ``handaug.integrations``). Each test
copies the installed sources into one tree under ``tmp_path``, optionally plants a bad import in
the copy, and runs ``lint-imports`` on it; the repository itself is never written.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _source_folder(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture
def staged(tmp_path: Path) -> Path:
    """``tmp_path/handaug``: the installed handaug with its plugins and integrations nested inside."""
    target = tmp_path / "handaug"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(_source_folder("handaug"), target, ignore=skip)
    for sub in ("plugins", "integrations"):
        if not (target / sub).exists():  # an editable install: the folder lives beside handaug/
            shutil.copytree(_source_folder(f"handaug.{sub}"), target / sub, ignore=skip)
    return tmp_path


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on ``tree`` (it puts its working directory first on sys.path)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["COLUMNS"] = "400"  # one line per contract name in the report
    return subprocess.run(
        [str(LINT_IMPORTS), str(CONFIG), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def plant(tree: Path, module: str, line: str) -> None:
    """Add ``line`` at the end of ``module`` (a dotted name) in the staged copy."""
    path = tree.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    assert path.is_file(), path
    path.write_text(path.read_text() + "\n" + line + "\n")


def test_the_package_keeps_every_contract(staged: Path) -> None:
    result = lint(staged)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout, result.stdout


CORE_NO_PLUGINS = "the core never imports handaug.plugins or handaug.integrations (it asks the registry by name) BROKEN"
NO_LIGHTNING = "never import Lightning, even inside a function BROKEN"

#: (module to plant in, the planted line, what the report must say)
PLANTED = {
    "a core module imports a plugin": ("handaug.checkpoint", "from handaug.plugins import resnet",
                                       (CORE_NO_PLUGINS, "handaug.checkpoint -> handaug.plugins.resnet")),
    "a measure imports an adapter": ("handaug.metrics.suite", "from handaug.integrations import batch", (CORE_NO_PLUGINS,)),
    "Lightning inside a function of synth_to_real": ("handaug.synth_to_real", "def _late():\n    import lightning\n    return lightning",
                                                     (NO_LIGHTNING,)),
    "a measure reaches Lightning through the data module": ("handaug.metrics.fid", "from handaug.data import datamodule", (NO_LIGHTNING,)),
    "an upward import": ("handaug.checkpoint_config", "from handaug import synth_to_real", ("handaug's layers", "BROKEN")),
    # data.procedural imports data.joints; the reverse closes a cycle inside one layer
    "a cycle inside a package": ("handaug.data.joints", "from handaug.data import procedural",
                                 ("no import cycle between the modules of any one package BROKEN",)),
}


@pytest.mark.parametrize("case", list(PLANTED))
def test_a_planted_bad_import_breaks_its_contract(staged: Path, case: str) -> None:
    module, line, expected = PLANTED[case]
    plant(staged, module, line)
    result = lint(staged)
    assert result.returncode != 0
    for text in expected:
        assert text in result.stdout, result.stdout


def test_a_new_module_must_be_placed_in_a_layer(staged: Path) -> None:
    (staged / "handaug" / "unplaced.py").write_text('"""A module nobody put in a layer."""\n')
    result = lint(staged)
    assert result.returncode != 0
    assert "unplaced" in result.stdout, result.stdout
