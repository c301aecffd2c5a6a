"""The code keeps the project's ruff rules ([tool.ruff] in pyproject.toml), import order included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).with_name("ruff")


def test_ruff_finds_nothing() -> None:
    result = subprocess.run([str(RUFF), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_flags_an_unsorted_import(tmp_path: Path) -> None:
    # the check is live: the same configuration refuses a file whose imports are out of order
    bad = tmp_path / "unsorted.py"
    bad.write_text("import sys\nimport os\n\nprint(os, sys)\n")
    result = subprocess.run(
        [str(RUFF), "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(bad)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 1 and "I001" in result.stdout, result.stdout
