"""Processes forked after a translation do not hang (handaug.fork_safety).

Without the fix a child forked after the parent ran a multi-threaded CPU translation waits forever
in OpenMP at its first parallel operation, so these tests run the fork in a subprocess (or a pool)
with a timeout: a regression fails them, it never hangs the test suite.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap

import pytest
import torch

from handaug import save_generator
from handaug.registry import create_generator

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the fork start method exists only on POSIX")

#: Generous for a few tiny translations on a loaded 2-core machine; the hang it guards against is forever.
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return save_generator(create_generator("resnet", n_blocks=1, ngf=8), tmp_path_factory.mktemp("fork") / "ckpt")


POOL_AFTER_TRANSLATION = """
import multiprocessing, sys
import torch
import handaug

torch.set_num_threads(2)  # the parent's OpenMP team: what a forked child inherits without its threads
s2r = handaug.SynthToReal(sys.argv[1], precision="fp32")
images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
expected = s2r(images)  # multi-threaded convolutions in the parent, before the fork

def translate(_):
    return torch.get_num_threads(), s2r(images)

with multiprocessing.get_context("fork").Pool(2) as pool:
    results = pool.map(translate, range(4))
assert torch.get_num_threads() == 2, "the parent keeps its threads"
for threads, out in results:
    assert threads == 1, threads
    assert (out.int() - expected.int()).abs().max() <= 1  # one thread may round a level differently
print("pool finished")
"""


def test_fork_pool_after_a_translation_in_the_parent_finishes(ckpt, tmp_path):
    script = tmp_path / "pool_after_translation.py"
    script.write_text(textwrap.dedent(POOL_AFTER_TRANSLATION))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2"}
    try:
        result = subprocess.run([sys.executable, str(script), str(ckpt)], capture_output=True, text=True,
                                timeout=TIMEOUT_S, env=env)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"a fork Pool after a translation in the parent hung (no result in {TIMEOUT_S} s)")
    assert result.returncode == 0, result.stderr
    assert "pool finished" in result.stdout


def test_the_handler_is_registered_once_at_import():
    import handaug  # noqa: F401 - importing registers it
    from handaug import fork_safety

    assert fork_safety._registered == torch.backends.openmp.is_available()
    assert fork_safety.register_fork_handler() is False  # a second registration is refused


def test_forked_child_runs_torch_on_one_thread():
    import handaug  # noqa: F401

    torch.set_num_threads(2)
    try:
        torch.randn(1 << 20).add_(1.0)  # a parallel region in this process
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its thread count after a parallel-sized operation, then leave
            try:
                torch.randn(1 << 20).add_(1.0)
                os.write(write, str(torch.get_num_threads()).encode())
            finally:
                os._exit(0)
        os.close(write)
        ready, _, _ = select.select([read], [], [], TIMEOUT_S)
        if not ready:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("a forked child hung at its first parallel torch operation")
        threads = os.read(read, 16).decode()
        os.close(read)
        os.waitpid(pid, 0)
        assert threads == ("1" if torch.backends.openmp.is_available() else "2")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
