"""Checkpoints: RNG and loader state, restore checks, resume_if_requested. (Exact resume of every
training task through `fit` is tested in test_fit_resume.py.)"""

import random

import pytest
import torch
from torch import nn

from course_utils import checkpoints as ck
from course_utils.loaders import tensor_loader
from course_utils.text import SeqDataLoader


def test_loader_rng_state_round_trips_for_both_kinds_of_loader():
    seq = SeqDataLoader([i % 7 for i in range(500)], 4, 5, use_random_iter=True, seed=3)
    tens = tensor_loader(torch.arange(40.0), batch_size=8, shuffle=True,
                         generator=torch.Generator().manual_seed(3))
    for loader in (seq, tens):
        saved = ck.loader_rng_state(loader)
        first = [b[0].tolist() for b in loader]
        ck.set_loader_rng_state(loader, saved)
        assert [b[0].tolist() for b in loader] == first
    assert ck.loader_rng_state([1, 2, 3]) is None  # a plain list has no RNG of its own
    with pytest.raises(ck.CheckpointError, match="same kind of data loader"):
        ck.set_loader_rng_state(seq, torch.Generator().get_state())


def test_global_rng_state_round_trip():
    import numpy as np

    saved = ck.rng_state()
    a = (torch.rand(3), random.random(), np.random.rand())
    ck.set_rng_state(saved)
    b = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_restore_rejects_foreign_and_mismatched_checkpoints(tmp_path):
    path = tmp_path / "x.pt"
    ck.save_checkpoint(path, {"weights": torch.zeros(2)})
    with pytest.raises(ck.CheckpointError, match="not a training checkpoint"):
        ck.restore_training_state(path, nn.Linear(2, 2))
    net = nn.Linear(2, 2)
    ck.save_checkpoint(path, ck.training_state(net, torch.optim.SGD(net.parameters(), lr=0.1), epoch=1))
    mismatch = r"shape mismatch for bias \(2,\) vs \(3,\), weight \(2, 2\) vs \(3, 2\)"
    with pytest.raises(ck.CheckpointError, match=mismatch):
        ck.restore_training_state(path, nn.Linear(2, 3))
    two_groups = torch.optim.SGD([{"params": [net.weight]}, {"params": [net.bias]}], lr=0.1)
    with pytest.raises(ck.CheckpointError, match=r"1 parameter group\(s\) of \[2\] tensors.*2 of \[1, 1\]"):
        ck.restore_training_state(path, nn.Linear(2, 2), two_groups)
    with pytest.raises(ck.CheckpointError, match="does not exist"):
        ck.restore_training_state(tmp_path / "none.pt", net)


def test_resume_if_requested_starts_fresh_unless_a_checkpoint_exists(tmp_path):
    net = nn.Linear(2, 2)
    path = tmp_path / "run.pt"
    assert ck.resume_if_requested(path, False, net) == (0, {})
    assert ck.resume_if_requested(path, True, net) == (0, {})  # first run with resume=True
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_path"):
        ck.resume_if_requested(None, True, net)
    ck.save_checkpoint(path, ck.training_state(net, epoch=2, history={"loss": [1.0, 0.5]}))
    assert ck.resume_if_requested(path, False, net) == (0, {})  # resume=False ignores the file
    assert ck.resume_if_requested(path, True, net) == (2, {"loss": [1.0, 0.5]})
