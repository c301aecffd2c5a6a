"""What the benchmarks write beside their printed tables: their figures as JSON, and where their time goes.

:func:`write_json` replaces a benchmark's JSON whole after every row, so a run that a time limit
stops (a stage of ``gpu_check.sh``) keeps what it measured. :func:`profiled` writes torch.profiler
tables (``--profile DIR``). The GPU check has minutes on a lent GPU; a figure below its goal then needs the reason, not a
second run. Each table lists operators by their own device time (CUDA kernels on a GPU, CPU time
on the CPU), once as is and once split by input shapes, which tells a 3-channel 7×7 convolution
from a 64-channel 3×3 one and a VGG16 layer from a generator's.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

#: Rows of each table.
ROWS = 30


@contextlib.contextmanager
def profiled(device: torch.device, path: Path | str, title: str) -> Iterator[None]:
    """Profile the block (CPU, and CUDA on a CUDA ``device``) and write its tables to ``path``."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, record_shapes=True) as prof:
        yield
        if cuda:
            torch.cuda.synchronize(device)
    write_tables(prof, cuda, Path(path), title)


def write_tables(prof: profile, cuda: bool, path: Path, title: str) -> None:
    sort_by = "self_device_time_total" if cuda else "self_cpu_time_total"  # "device": torch >= 2.4 (the GPU image has 2.11)
    events = prof.key_averages()
    by_shape = prof.key_averages(group_by_input_shape=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"{title}\n\nby operator, sorted by {sort_by}\n{events.table(sort_by=sort_by, row_limit=ROWS, max_name_column_width=60)}\n"
        f"by operator and input shapes\n{by_shape.table(sort_by=sort_by, row_limit=ROWS, max_name_column_width=60)}\n"
    )


def write_json(path: str | Path, report: dict) -> None:
    """``report`` as JSON, replacing ``path`` whole (through a ``.partial`` file renamed onto it)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    temp = f"{path}.partial"
    with open(temp, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(temp, path)
