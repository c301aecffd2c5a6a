"""handaug-eval takes a checkpoint by Hugging Face Hub name, offline from a populated cache."""

from __future__ import annotations

import pytest
from test_hub import add_to_cache, checkpoint_files, make_checkpoint, run_cli


@pytest.mark.slow
def test_handaug_eval_takes_a_hub_name_offline(tmp_path):
    cache = tmp_path / "hf-cache"
    add_to_cache(cache, "acme/hands", checkpoint_files(make_checkpoint(tmp_path / "ckpt")))
    env = {"HF_HUB_OFFLINE": "1", "HANDAUG_OFFLINE": "", "HF_HUB_CACHE": str(cache)}
    result = run_cli("handaug-eval", "grid", "--ckpt", "demo=hf://acme/hands", "--out", tmp_path / "report",
                     "--image-size", "32", "--grid-images", "2", "--no-progress", env=env)
    assert result.returncode == 0, result.stderr
    assert "demo" in (tmp_path / "report" / "report.md").read_text()
