"""One table of benchmarks/gpu_check.sh's figures against the goals of issues 18 and 19.

    python benchmarks/gpu_summary.py OUT_DIR      # reads transform.json, loop.json, train.json, translate.json, adapters.log
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "gpu-check")
    lines: list[tuple[str, str, str]] = []
    transform = load(out / "transform.json")
    if transform:
        rows = {r["mode"]: r for r in transform["rows"] if r["size"] == 256}
        default, crop = rows.get("SynthToReal default"), rows.get("hand_crop")
        if default:
            lines.append(("SynthToReal default, 256 px, batch 64", f"{default['images_per_s']:.0f} img/s, "
                          f"{default['peak_percent'] or 0:.1f} % of bf16 peak, {default['ratio']:.2f}x eager fp32", ">= 40 % of peak"))
            lines.append(("  its difference from eager fp32", f"{default['diff_mean']:.2f} mean / {default['diff_max']} max uint8",
                          "<= 1 mean / 8 max"))
        if default and crop:
            lines.append(("hand_crop over full frame", f"{crop['images_per_s'] / default['images_per_s']:.2f}x "
                          f"({crop['window_sizes']} window sizes, {crop['window_percent']:.0f} % of the frame)", ">= 1.8x"))
    else:
        lines.append(("transform_speed", "no result", ""))
    loop = load(out / "loop.json")
    if loop:
        rows = {r["mode"]: r for r in loop["rows"]}
        for mode, goal in (("+ SynthToReal p=1", "<= 1.3x"), ("+ p=0.5", ""), ("+ masked composite p=1", ""), ("+ hand_crop", "<= 1.15x")):
            if mode in rows:
                lines.append((f"ResNet-50 step {mode}", f"{rows[mode]['ratio']:.2f}x ({rows[mode]['ms_per_step']:.1f} ms)", goal))
    else:
        lines.append(("loop_overhead", "no result", ""))
    try:
        adapters = [line for line in (out / "adapters.log").read_text().splitlines() if " PASS " in line or " FAIL " in line]
        failed = [line for line in adapters if " FAIL " in line]
        lines.append(("adapters in workers (spawn, fork, batched)", f"{len(adapters) - len(failed)} of {len(adapters)} as expected",
                      "all"))
    except OSError:
        lines.append(("adapters_in_workers", "no result", ""))
    train = load(out / "train.json")
    if train:
        for row in train.get("rows", []):
            if row.get("side") == "handaug-train":
                lines.append((f"handaug-train step, {row['size']} px, batch {row['batch']}",
                              f"{row['images_per_s']:.1f} img/s, {100 * row['bf16_peak_fraction']:.1f} % of bf16 peak, "
                              f"{row['ratio_vs_plain']:.2f}x plain", ">= 168 img/s at batch 8 (3x 56), >= 1.5x plain"))
    else:
        lines.append(("train_speed", "no result", ""))
    translate = load(out / "translate.json")
    if translate:
        for row in translate.get("results", [])[1:]:
            lines.append((row["method"], f"{row['images_per_s']:.0f} img/s, {row['ratio']:.2f}x the naive loop", ">= 5x"))
    else:
        lines.append(("translate_speed", "no result", ""))
    width = max(len(a) for a, _, _ in lines)
    print(f"{'figure':<{width}}  {'measured':<60}  goal")
    for name, value, goal in lines:
        print(f"{name:<{width}}  {value:<60}  {goal}")


if __name__ == "__main__":
    main()
