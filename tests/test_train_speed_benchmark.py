"""benchmarks/train_speed.py runs end to end on the CPU at a tiny size and writes its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_speed.py"


@pytest.mark.slow
def test_train_speed_benchmark_compares_handaug_with_the_plain_step(tmp_path):
    out = tmp_path / "train.json"
    args = [sys.executable, str(SCRIPT), "--size", "32", "--batches", "1", "--ngf", "4", "--ndf", "4", "--n-blocks", "1",
            "--windows", "2", "--window-seconds", "0.01", "--warmup", "1", "--threads", "1", "--with-data",
            "--data-workers", "1", "--json", str(out)]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    sides = [r["side"] for r in result["rows"]]
    assert sides == ["plain PyTorch (eager fp32, NCHW)", "handaug-train", "handaug-train, procedural data (1 workers)"]
    for row in result["rows"]:
        assert row["images_per_s"] > 0 and len(row["step_ms_windows"]) == 2 and row["gflop_per_step"] > 0
        assert row["peak_memory_gib"] > 0 and row["precision"] in ("32 (fp32)", "32-true")
    assert result["rows"][0]["ratio_vs_plain"] == 1.0
    assert "compile=False, channels_last=none, fused_adam=False" in result["rows"][1]["options"]
    assert result["summary"].startswith("b1: ") and "x plain" in result["summary"]
    assert "ratio: images/s over the plain step's" in proc.stdout
