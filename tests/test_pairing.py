"""The training order: deterministic per epoch, sharded over ranks, resumable part-way."""

from __future__ import annotations

import pytest

from handaug.data.pairing import PairSampler, ResumableDataLoader, epoch_order


def test_random_pairing_reshuffles_every_epoch_and_uses_every_image_evenly():
    s0, r0 = epoch_order(10, 4, epoch=0, seed=3)
    s1, r1 = epoch_order(10, 4, epoch=1, seed=3)
    assert len(s0) == len(r0) == 10  # the larger set
    assert sorted(s0.tolist()) == list(range(10))
    assert sorted(r0.tolist()) == sorted(list(range(4)) * 2 + r0[8:].tolist())  # tiled permutations
    assert s0.tolist() != s1.tolist()
    again = epoch_order(10, 4, epoch=0, seed=3)
    assert again[0].tolist() == s0.tolist() and again[1].tolist() == r0.tolist()


def test_index_pairing_is_the_reference_loaders_order():
    s, r = epoch_order(10, 4, epoch=5, seed=3, pairing="index", epoch_length="min")
    assert s.tolist() == [0, 1, 2, 3] and r.tolist() == [0, 1, 2, 3]
    s, r = epoch_order(10, 4, epoch=5, seed=3, pairing="index", epoch_length="max")
    assert s.tolist() == list(range(10)) and r.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]


@pytest.mark.parametrize("bad, name", [({"pairing": "zip"}, "pairing"), ({"epoch_length": "mean"}, "epoch_length")])
def test_unknown_order_names_are_refused(bad, name):
    with pytest.raises(ValueError, match=name):
        epoch_order(3, 3, 0, 0, **bad)


def test_ranks_split_the_epoch_without_overlap_and_pad_evenly():
    shards = [list(PairSampler(10, 7, batch_size=2, seed=1, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    positions = sorted(k.position for shard in shards for k in shard)
    assert set(positions) == set(range(10)) and len(positions) == 12  # two wrap around to fill the shards
    single = {k.position: k for k in PairSampler(10, 7, batch_size=2, seed=1)}
    assert all(single[k.position] == k for shard in shards for k in shard)  # same pairs whatever the world size


def test_resume_skips_the_batches_done_in_that_epoch_only():
    sampler = PairSampler(12, 12, batch_size=3, seed=0)
    full = sampler.keys(2)
    sampler.resume(2, batches_done=2)
    assert list(sampler) == full[6:]
    assert list(sampler) == full[6:]  # a second iterator in the same epoch skips too
    sampler.set_epoch(3)
    assert list(sampler) == sampler.keys(3)


def test_loader_state_round_trip_and_changed_data_restarts_the_epoch():
    sampler = PairSampler(12, 12, batch_size=3, seed=0)
    loader = ResumableDataLoader(range(12), batch_size=3, sampler=sampler)
    loader.progress = lambda: (4, 1, False)
    state = loader.state_dict()
    other = ResumableDataLoader(range(12), batch_size=3, sampler=PairSampler(12, 12, batch_size=3, seed=0))
    other.load_state_dict(state)
    assert list(other.sampler) == sampler.keys(4)[3:]
    finished = {**state, "epoch_finished": True}
    other.load_state_dict(finished)
    assert other.sampler.epoch == 5 and list(other.sampler) == sampler.keys(5)
    changed = ResumableDataLoader(range(13), batch_size=3, sampler=PairSampler(13, 12, batch_size=3, seed=0))
    with pytest.warns(UserWarning, match="starts from its beginning"):
        changed.load_state_dict(state)
    assert list(changed.sampler) == changed.sampler.keys(4)
