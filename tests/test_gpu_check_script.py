"""benchmarks/gpu_check.sh and its summary: the one GPU call of a session must not be spent on a broken script.

The script's CPU dry run (``GPU_CHECK_DEVICE=cpu``) runs the same five stages and the same summary
at tiny sizes; the summary is checked to keep printing every other figure when one stage failed
or left a figure the table cannot read.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
STAGES = ("transform", "loop", "adapters", "train", "translate")


def load_summary():
    spec = importlib.util.spec_from_file_location("gpu_summary", BENCHMARKS / "gpu_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_cpu_dry_run_runs_every_stage_and_prints_every_figure(tmp_path):
    env = {**os.environ, "GPU_CHECK_DEVICE": "cpu", "PYTHON": sys.executable, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    proc = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh"), str(tmp_path / "out")], cwd=BENCHMARKS.parent,
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for stage in STAGES:
        assert f"== {stage}: exit 0 after" in proc.stdout, f"stage {stage} failed:\n{proc.stdout[-3000:]}"
    table = proc.stdout[proc.stdout.index("figure "):]
    assert "no result" not in table and "unreadable" not in table, table
    for figure in ("SynthToReal default, 64 px, batch 4", "hand_crop over full frame", "ResNet-50 step + SynthToReal p=1",
                   "ResNet-50 step + hand_crop", "adapters in workers (spawn, fork, batched)  10 of 10 as expected",
                   "handaug-train step, 32 px, batch 1", "handaug-translate "):
        assert figure in table, f"{figure!r} missing from:\n{table}"
    assert "n/a % of bf16 peak" in table  # the CPU has no bf16 peak: said, not a crash
    profiles = sorted(p.name for p in (tmp_path / "out" / "profiles").iterdir())
    assert profiles == ["train_32px_b1.txt", "transform_64px_default.txt", "transform_64px_hand_crop.txt"]
    for name in profiles:
        text = (tmp_path / "out" / "profiles" / name).read_text()
        assert "sorted by self_cpu_time_total" in text and "aten::" in text and "by operator and input shapes" in text


def test_the_summary_prints_the_other_figures_when_a_stage_failed_or_is_unreadable(tmp_path, capsys, monkeypatch):
    summary = load_summary()
    (tmp_path / "loop.json").write_text(json.dumps({"rows": [{"mode": "+ SynthToReal p=1", "ratio": 1.21, "ms_per_step": 30.5}]}))
    (tmp_path / "train.json").write_text(json.dumps({"rows": [{"side": "handaug-train", "size": 256, "batch": 8}]}))  # no figures
    (tmp_path / "translate.json").write_text("{not json")
    (tmp_path / "adapters.log").write_text("albumentations fork   PASS  0.1 s  ok\nkornia spawn   FAIL  9.0 s  CUDA error\n")
    rows = {name: value for name, value, _ in summary.summary(tmp_path)}
    assert rows["transform_speed"] == "no result"
    assert rows["ResNet-50 step + SynthToReal p=1"] == "1.21x (30.5 ms)"
    assert rows["adapters in workers (spawn, fork, batched)"] == "1 of 2 as expected (failed: kornia spawn)"
    assert rows["train_speed"].startswith("unreadable result (KeyError: 'images_per_s')")
    assert rows["translate_speed"] == "no result"
    monkeypatch.setattr(sys, "argv", ["gpu_summary.py", str(tmp_path)])
    summary.main()
    assert "1.21x (30.5 ms)" in capsys.readouterr().out


def test_the_summary_says_n_a_for_a_figure_the_device_does_not_have():
    summary = load_summary()
    assert summary.number(None, ".1f") == "n/a"
    assert summary.number(12.345, ".1f") == "12.3"
