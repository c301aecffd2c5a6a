"""One table of benchmarks/gpu_check.sh's figures against the goals of issues 18 and 19.

    python benchmarks/gpu_summary.py OUT_DIR      # reads transform.json, loop.json, train.json, translate.json, adapters.log

A stage that left no result, or a result the table cannot read (a missing field, a figure that is
``None`` because the device has no bf16 peak), gives a row that says so: the other rows still
print, so one failed stage never hides the figures of the others. The transform rows are those
of the largest image size measured (256 px in the GPU check; 64 px in its CPU dry run).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

Row = tuple[str, str, str]


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def number(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``n/a`` where the benchmark had no figure."""
    return "n/a" if value is None else format(value, spec)


def transform_rows(out: Path) -> list[Row]:
    transform = load(out / "transform.json")
    if not transform:
        return [("transform_speed", "no result", "")]
    size = max(r["size"] for r in transform["rows"])
    rows = {r["mode"]: r for r in transform["rows"] if r["size"] == size}
    default, crop = rows.get("SynthToReal default"), rows.get("hand_crop")
    lines: list[Row] = []
    if default:
        lines.append((f"SynthToReal default, {size} px, batch {transform['batch']}",
                      f"{default['images_per_s']:.0f} img/s, {number(default['peak_percent'], '.1f')} % of bf16 peak, "
                      f"{default['ratio']:.2f}x eager fp32", ">= 40 % of peak"))
        lines.append(("  its difference from eager fp32", f"{default['diff_mean']:.2f} mean / {default['diff_max']} max uint8",
                      "<= 1 mean / 8 max"))
    if default and crop:
        lines.append(("hand_crop over full frame", f"{crop['images_per_s'] / default['images_per_s']:.2f}x "
                      f"({crop['window_sizes']} window sizes, {crop['window_percent']:.0f} % of the frame)", ">= 1.8x"))
    return lines or [("transform_speed", "no default row", "")]


def loop_rows(out: Path) -> list[Row]:
    loop = load(out / "loop.json")
    if not loop:
        return [("loop_overhead", "no result", "")]
    rows = {r["mode"]: r for r in loop["rows"]}
    return [
        (f"ResNet-50 step {mode}", f"{rows[mode]['ratio']:.2f}x ({rows[mode]['ms_per_step']:.1f} ms)", goal)
        for mode, goal in (("+ SynthToReal p=1", "<= 1.3x"), ("+ p=0.5", ""), ("+ masked composite p=1", ""), ("+ hand_crop", "<= 1.15x"))
        if mode in rows
    ]


def adapter_rows(out: Path) -> list[Row]:
    try:
        text = (out / "adapters.log").read_text()
    except OSError:
        return [("adapters_in_workers", "no result", "")]
    adapters = [line for line in text.splitlines() if " PASS " in line or " FAIL " in line]
    failed = [line.split()[0] + " " + line.split()[1] for line in adapters if " FAIL " in line]
    value = f"{len(adapters) - len(failed)} of {len(adapters)} as expected" + (f" (failed: {', '.join(failed)})" if failed else "")
    return [("adapters in workers (spawn, fork, batched)", value, "all")]


def train_rows(out: Path) -> list[Row]:
    train = load(out / "train.json")
    if not train:
        return [("train_speed", "no result", "")]
    return [
        (f"handaug-train step, {row['size']} px, batch {row['batch']}",
         f"{row['images_per_s']:.1f} img/s, {number(row['bf16_peak_fraction'] and 100 * row['bf16_peak_fraction'], '.1f')} % "
         f"of bf16 peak, {row['ratio_vs_plain']:.2f}x plain", ">= 168 img/s at batch 8 (3x 56), >= 1.5x plain")
        for row in train.get("rows", []) if row.get("side") == "handaug-train"
    ] or [("train_speed", "no handaug-train row", "")]


def translate_rows(out: Path) -> list[Row]:
    translate = load(out / "translate.json")
    if not translate:
        return [("translate_speed", "no result", "")]
    return [(row["method"], f"{row['images_per_s']:.0f} img/s, {row['ratio']:.2f}x the naive loop", ">= 5x")
            for row in translate.get("results", [])[1:]]


SECTIONS: tuple[tuple[str, Callable[[Path], list[Row]]], ...] = (
    ("transform_speed", transform_rows), ("loop_overhead", loop_rows), ("adapters_in_workers", adapter_rows),
    ("train_speed", train_rows), ("translate_speed", translate_rows),
)


def summary(out: Path) -> list[Row]:
    """The table's rows; a section whose result cannot be read gives one row naming what is wrong."""
    lines: list[Row] = []
    for name, rows in SECTIONS:
        try:
            lines.extend(rows(out))
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
            lines.append((name, f"unreadable result ({type(err).__name__}: {err})", ""))
    return lines


def main() -> None:
    lines = summary(Path(sys.argv[1] if len(sys.argv) > 1 else "gpu-check"))
    width = max(len(a) for a, _, _ in lines)
    print(f"{'figure':<{width}}  {'measured':<60}  goal")
    for name, value, goal in lines:
        print(f"{name:<{width}}  {value:<60}  {goal}")


if __name__ == "__main__":
    main()
