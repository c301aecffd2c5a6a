"""Guards for the GPU path, run on the CPU: what makes a GPU slow is counted, not timed.

A host synchronisation (``.item()``, ``bool(t)``, ``nonzero``, a boolean-mask index, ``unique``)
makes the CPU wait for all queued GPU work, and inside a user's training loop the GPU then idles
while the CPU catches up; every generator call is a sequence of kernel launches; every copy is a
pass over memory. These tests count each at the aten level with a ``TorchDispatchMode`` (the same
operations dispatch on the CPU as on CUDA) and count the one sanctioned read of the device,
:func:`handaug.device_sync.to_host`, so a change that adds a hidden sync or a generator call per
image fails here, on a machine without a GPU.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from handaug import SynthToReal, device_sync, load_generator, save_generator
from handaug.data.procedural import ProceduralHands
from handaug.hand_crop import MAX_GROUPS, bucket_sizes, hand_window_groups
from handaug.precision import cpu_supports_bf16
from handaug.registry import create_generator

#: aten operations that read a tensor's values on the host (on CUDA: wait for the device).
SYNC_OPS = {"_local_scalar_dense", "nonzero", "item", "_unique2", "unique_dim", "unique_consecutive", "masked_select"}
COPY_OPS = {"copy_", "_to_copy", "to"}  # "to": as dispatched under inference_mode


class OpCounter(TorchDispatchMode):
    """Counts aten operations by name; boolean-mask indexing (a hidden ``nonzero``) counts as a sync."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        self.ops[name] += 1
        if name in COPY_OPS and args and isinstance(args[0], torch.nn.Parameter):
            self.ops["weight_cast"] += 1  # autocast casting a layer's weight or bias at call time
        if name in ("index", "index_put", "index_put_"):
            indices = args[1] if len(args) > 1 else ()
            if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ()):
                self.ops["boolean_mask_index"] += 1
        return func(*args, **(kwargs or {}))

    @property
    def syncs(self) -> int:
        return sum(self.ops[name] for name in SYNC_OPS) + self.ops["boolean_mask_index"]

    @property
    def copies(self) -> int:
        return sum(self.ops[name] for name in COPY_OPS)


@pytest.fixture
def ckpts(tmp_path):
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(save_generator(create_generator("resnet", n_blocks=1, ngf=8), tmp_path / f"g{seed}", background=1.0))
    return paths


@pytest.fixture
def host_reads(monkeypatch):
    """Counts calls of the one sanctioned device read."""
    calls = []
    original = device_sync.to_host

    def counted(tensor):
        calls.append(tuple(tensor.shape))
        return original(tensor)

    monkeypatch.setattr(device_sync, "to_host", counted)
    return calls


def hands(n, size=64, seed=0, scale=(0.2, 0.6)):
    data = ProceduralHands("synthetic", image_size=size, length=n, seed=seed, background="noise", hand_scale=scale)
    images = torch.stack([torch.from_numpy(data[i]["image"]).permute(2, 0, 1) for i in range(n)])
    masks = torch.stack([torch.from_numpy(data[i]["mask"] > 0) for i in range(n)]).unsqueeze(1)
    return images, masks


def count_calls(s2r, images, mask=None):
    """(OpCounter, generator calls) of one call of ``s2r`` after a warm-up call that loads the generators."""
    s2r(images, mask=mask)
    calls = []
    hooks = [g.register_forward_pre_hook(lambda *_: calls.append(1)) for g in s2r.generators("cpu")]
    try:
        with OpCounter() as counter:
            s2r(images, mask=mask)
    finally:
        for h in hooks:
            h.remove()
    return counter, len(calls)


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_full_frame_default_call_never_reads_the_device_and_calls_the_generator_once(ckpts, host_reads, precision):
    images, _ = hands(8)
    counter, calls = count_calls(SynthToReal(ckpts[0], precision=precision), images)
    assert counter.syncs == 0 and host_reads == [] and calls == 1
    # Weights are cast once, when loaded, not by autocast at every layer and call (one kernel each on a GPU).
    assert counter.ops["weight_cast"] == 0, counter.ops
    if precision == "fp32":  # uint8 in, uint8 out: the two conversions. (CPU autocast adds activation casts CUDA's does not.)
        assert counter.copies <= 2, counter.ops


@pytest.mark.skipif(not cpu_supports_bf16(), reason="bf16 autocast needs AVX512-BF16/AMX on the CPU")
def test_weights_held_in_bf16_give_autocasts_result_bit_for_bit(ckpts):
    images, _ = hands(4)
    generator = load_generator(ckpts[0])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = generator(images.float() / 127.5 - 1)
    expected = ((y.float() + 1) * 0.5).clamp(0, 1).mul(255).round().to(torch.uint8)
    assert torch.equal(SynthToReal(ckpts[0], precision="bf16")(images), expected)


def test_masked_composite_reads_nothing_either(ckpts, host_reads):
    images, masks = hands(8)
    counter, calls = count_calls(SynthToReal(ckpts[0]), images, masks)
    assert counter.syncs == 0 and host_reads == [] and calls == 1


def test_p_below_one_draws_on_the_host_and_gathers_without_a_sync(ckpts, host_reads):
    images, masks = hands(8)
    counter, calls = count_calls(SynthToReal(ckpts[0], p=0.5, seed=3), images, masks)
    assert counter.syncs == 0 and host_reads == [] and calls == 1


def test_a_pool_runs_one_call_per_member_without_a_sync(ckpts, host_reads):
    images, _ = hands(8)
    counter, calls = count_calls(SynthToReal(ckpts, seed=1), images)
    assert counter.syncs == 0 and host_reads == [] and calls == 2


def test_float_images_cost_one_value_check_unless_turned_off(ckpts, host_reads):
    images, _ = hands(4)
    images = images.float() / 255
    checked, _ = count_calls(SynthToReal(ckpts[0]), images)
    unchecked, _ = count_calls(SynthToReal(ckpts[0], check_values=False), images)
    assert checked.syncs >= 1 and unchecked.syncs == 0
    assert torch.equal(SynthToReal(ckpts[0], check_values=False)(images), SynthToReal(ckpts[0])(images))


def test_hand_crop_reads_the_device_once_and_calls_the_generator_at_most_three_times(ckpts, host_reads):
    images, masks = hands(24, size=96, scale=(0.1, 0.7))  # hands of many sizes: many ladder rungs
    s2r = SynthToReal(ckpts[0], hand_crop=True)
    s2r.HAND_CROP_GROUPS = {"cpu": MAX_GROUPS}  # the GPU's cap, on this CPU (the CPU's own is larger)
    groups = hand_window_groups(masks.float(), s2r.crop_margin, s2r.stride, s2r.min_side, max_groups=64)
    assert len(groups) > MAX_GROUPS  # the ladder alone would need more calls than allowed
    host_reads.clear()
    counter, calls = count_calls(s2r, images, masks)
    assert len(host_reads) == 2  # one per call: the warm-up and the counted one
    assert counter.syncs == 0 and 1 <= calls <= MAX_GROUPS


def test_hand_crop_with_a_pool_and_p_reads_once_per_member(ckpts, host_reads):
    images, masks = hands(12, size=96)
    s2r = SynthToReal(ckpts, p=0.7, seed=0, hand_crop=True)
    s2r.HAND_CROP_GROUPS = {"cpu": MAX_GROUPS}
    host_reads.clear()
    counter, calls = count_calls(s2r, images, masks)
    assert counter.syncs == 0 and len(host_reads) == 2 * 2 and calls <= 2 * MAX_GROUPS


# ----------------------------------------------------------------------------- bucketing
def brute_force_pixels(heights, widths, max_groups):
    """Fewest pixels over every assignment of windows to at most ``max_groups`` groups (tiny inputs only)."""
    n, best = len(heights), np.inf
    for labels in np.ndindex(*([max_groups] * n)):
        labels = np.asarray(labels)
        cost = sum(
            (labels == g).sum() * heights[labels == g].max() * widths[labels == g].max() for g in range(max_groups) if (labels == g).any()
        )
        best = min(best, cost)
    return best


def pixels(heights, widths, labels):
    return sum((labels == g).sum() * heights[labels == g].max() * widths[labels == g].max() for g in np.unique(labels))


@pytest.mark.parametrize("seed", range(12))
def test_bucketing_is_close_to_the_best_split_and_never_over_the_group_limit(seed):
    rng = np.random.default_rng(seed)
    heights = rng.choice([16, 20, 24, 32, 40, 48, 60], size=7)
    widths = rng.choice([16, 20, 24, 32, 40, 48, 60], size=7)
    labels = bucket_sizes(heights, widths, max_groups=3)
    assert len(np.unique(labels)) <= 3
    # Contiguous splits of three orders are not every partition of a 2-D problem, but come close.
    assert pixels(heights, widths, labels) <= 1.1 * brute_force_pixels(heights, widths, 3)


def test_bucketing_keeps_identical_sizes_together_and_uses_no_more_groups_than_pay():
    heights = np.array([32, 32, 32, 32])
    widths = np.array([24, 24, 24, 24])
    assert bucket_sizes(heights, widths).tolist() == [0, 0, 0, 0]
    labels = bucket_sizes(np.array([16, 64, 16, 64]), np.array([16, 64, 16, 64]))
    assert labels[0] == labels[2] != labels[1] == labels[3]


# ----------------------------------------------------------------------------- CUDA after fork
def test_cuda_in_a_forked_process_is_one_handaug_error_naming_the_ways_that_work(ckpts, monkeypatch):
    from handaug.fork_safety import CUDAInForkedProcessError

    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)  # as in a worker forked after the parent used CUDA
    s2r = SynthToReal(ckpts[0])
    with pytest.raises(CUDAInForkedProcessError, match=r"handaug.SynthToReal\(device='cuda'\) cannot run on CUDA in a forked process.*spawn.*device=None.*translate_batch"):
        s2r.generators("cuda")
    images, _ = hands(2)
    assert s2r(images).shape == images.shape  # the CPU is unaffected


def test_a_compiler_failure_falls_back_to_eager_once_with_a_warning(ckpts, monkeypatch):
    import torch._dynamo.exc as dynamo_exc

    calls = []

    def broken_compile(function, *args, **kwargs):
        def run(*a):
            calls.append(1)
            raise dynamo_exc.InternalTorchDynamoError("no C compiler")  # as on a machine without one

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    images, _ = hands(2)
    expected = SynthToReal(ckpts[0], compile=False)(images)
    s2r = SynthToReal(ckpts[0], compile=True)
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*translating without compiling from now on"):
        assert torch.equal(s2r(images), expected)
    assert torch.equal(s2r(images), expected) and len(calls) == 1  # not tried again


def test_a_pool_is_capped_before_any_checkpoint_is_read(ckpts):
    from handaug.synth_to_real import MAX_POOL

    with pytest.raises(ValueError, match=rf"ckpt holds 2000 checkpoints; a pool holds at most {MAX_POOL}"):
        SynthToReal([ckpts[0]] * 2000)
    assert len(SynthToReal([ckpts[0]] * MAX_POOL).checkpoints) == MAX_POOL


def test_the_cpu_uses_more_window_sizes_where_they_save_pixels(ckpts, host_reads):
    images, masks = hands(24, size=96, scale=(0.1, 0.7))
    s2r = SynthToReal(ckpts[0], hand_crop=True)
    _, calls = count_calls(s2r, images, masks)
    assert MAX_GROUPS < calls <= SynthToReal.HAND_CROP_GROUPS["cpu"]

