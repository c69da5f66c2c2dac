"""Checkpoints under concurrent writers, killed saves and mismatched resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from course_utils import checkpoints as ck

REPO = Path(__file__).resolve().parent.parent

WRITER = textwrap.dedent("""
    import json, sys, torch
    from course_utils.checkpoints import save_checkpoint
    path, writer, saves = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    errors = []
    for step in range(saves):
        value = float(writer * 1000 + step)
        try:
            save_checkpoint(path, {"writer": writer, "step": step,
                                   "payload": torch.full((100_000,), value)})
        except Exception as err:
            errors.append(f"{type(err).__name__}: {err}")
    print(json.dumps(errors))
""")

READER = textwrap.dedent("""
    import json, os, sys, time
    from course_utils.checkpoints import load_checkpoint
    path, stop = sys.argv[1], sys.argv[2]
    reads, errors = 0, []
    while not os.path.exists(stop):
        if not os.path.exists(path):
            time.sleep(0.001)
            continue
        try:
            state = load_checkpoint(path)
            expected = float(state["writer"] * 1000 + state["step"])
            if not bool((state["payload"] == expected).all()) or state["payload"].numel() != 100_000:
                errors.append(f"mixed checkpoint: {state['writer']}/{state['step']}")
            reads += 1
        except Exception as err:
            errors.append(f"{type(err).__name__}: {str(err)[:200]}")
        time.sleep(0.002)  # leave the (possibly two) cores to the writers now and then
    print(json.dumps({"reads": reads, "errors": errors}))
""")


def test_two_writers_and_a_reader_on_one_path(tmp_path):
    path = tmp_path / "shared.pt"
    stop = tmp_path / "stop"
    pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])  # keeps the netguard
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1"}
    run = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path), str(stop)], **run)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), "60"], **run)
               for w in (1, 2)]
    try:
        outputs = [w.communicate(timeout=300) for w in writers]
    finally:
        stop.write_text("")
        read_out, read_err = reader.communicate(timeout=120)
    for (out, err), proc in zip(outputs, writers, strict=True):
        assert proc.returncode == 0, err
        assert json.loads(out) == [], "a save failed"
    assert reader.returncode == 0, read_err
    result = json.loads(read_out)
    assert result["errors"] == [], result["errors"][:5]
    assert result["reads"] > 0
    final = ck.load_checkpoint(path)
    assert final["step"] == 59  # the last save of one of the writers won
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.pt", "stop"]


def test_a_save_that_starts_during_another_save_does_not_break_it(tmp_path, monkeypatch):
    # the deterministic core of the race above: while the first save is writing, a second
    # (in another process, in real life) saves to the same path. With one fixed temporary name
    # the second rename took the first save's file away (FileNotFoundError).
    path = tmp_path / "run.pt"
    real_save = torch.save
    calls = []

    def save_with_an_interruption(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        if not calls:
            calls.append("inner")
            ck.save_checkpoint(path, {"who": "second"})

    monkeypatch.setattr(ck.torch, "save", save_with_an_interruption)
    ck.save_checkpoint(path, {"who": "first"})
    assert calls == ["inner"]
    assert ck.load_checkpoint(path)["who"] == "first"  # the last rename wins
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


def test_save_flushes_file_and_folder_to_disk(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else None)
        real_fsync(fd)

    monkeypatch.setattr(ck.os, "fsync", fsync)
    ck.save_checkpoint(tmp_path / "a.pt", {"x": torch.zeros(3)})
    assert len(synced) == 2
    if synced[0] is not None:
        assert synced == [False, True]  # the temporary file, then the folder after the rename
    assert (tmp_path / "a.pt").stat().st_mode & 0o044 == 0o044  # usual permissions, not 0600


def test_stale_temporaries_of_killed_saves_are_removed_live_ones_kept(tmp_path):
    target = tmp_path / "run.pt"
    stale = [tmp_path / ".run.pt.0a1b2c3d.tmp", tmp_path / ".run.pt.tmp"]  # new and old naming
    live = tmp_path / ".run.pt.9f8e7d6c.tmp"  # another process saving right now
    foreign = [tmp_path / ".other.pt.0a1b2c3d.tmp", tmp_path / ".run.pt.0a1b2c3d.part",
               tmp_path / "run.pt.0a1b2c3d.tmp"]
    for p in [*stale, live, *foreign]:
        p.write_bytes(b"half a checkpoint")
    old = time.time() - 2 * ck.STALE_TEMPORARY_SECONDS
    for p in [*stale, *foreign]:
        os.utime(p, (old, old))
    ck.save_checkpoint(target, {"x": torch.ones(2)})
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["run.pt", live.name, *(p.name for p in foreign)])
    assert torch.equal(ck.load_checkpoint(target)["x"], torch.ones(2))


# --- unusable checkpoint paths, refused before any training -------------------------------

def test_checkpoint_path_that_is_a_folder_or_below_a_file_is_refused_up_front(tmp_path):
    net = nn.Linear(2, 2)
    folder = tmp_path / "runs"
    folder.mkdir()
    for resume in (False, True):
        with pytest.raises(ck.CheckpointError, match="is a folder; name a file in it"):
            ck.resume_if_requested(folder, resume, net)
    with pytest.raises(ck.CheckpointError, match="is a folder"):
        ck.save_checkpoint(folder, ck.training_state(net, epoch=1))
    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(ck.CheckpointError, match="lies below .*notes.txt, which is a file"):
        ck.resume_if_requested(tmp_path / "notes.txt" / "deeper" / "run.pt", False, net)
    ck.check_checkpoint_path(tmp_path / "new" / "folders" / "run.pt")  # creatable: fine
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.pt")
        with pytest.raises(ck.CheckpointError, match="not a regular file"):
            ck.resume_if_requested(tmp_path / "pipe.pt", True, net)
    assert ck.resume_if_requested(None, False, net) == (0, {})


# --- restoring into another optimizer or scheduler -----------------------------------------

def adam_checkpoint(path, net):
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    net(torch.randn(4, 2)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    ck.save_checkpoint(path, ck.training_state(net, opt, sched, epoch=1))
    return path


def test_adam_checkpoint_into_sgd_is_refused_naming_both(tmp_path):
    net = nn.Linear(2, 2)
    path = adam_checkpoint(tmp_path / "adam.pt", net)
    fresh = nn.Linear(2, 2)
    weights = [p.detach().clone() for p in fresh.parameters()]
    sgd = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ck.CheckpointError, match="state of the optimizer Adam, but this run's optimizer is SGD"):
        ck.restore_training_state(path, fresh, sgd)
    assert all(torch.equal(p, w) for p, w in zip(fresh.parameters(), weights, strict=True))  # nothing changed
    assert sgd.param_groups[0]["momentum"] == 0.9


def test_optimizer_of_another_kind_is_caught_without_the_class_name(tmp_path):
    # a checkpoint written before the class name was stored
    path = adam_checkpoint(tmp_path / "adam.pt", nn.Linear(2, 2))
    state = ck.load_checkpoint(path)
    del state["optimizer_class"]
    ck.save_checkpoint(path, state)
    fresh = nn.Linear(2, 2)
    sgd = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ck.CheckpointError, match=r"lacks \[.*'momentum'.*\].*SGD needs"):
        ck.restore_training_state(path, fresh, sgd)
    fresh(torch.randn(3, 2)).sum().backward()
    sgd.step()  # the failed restore was undone: no KeyError: 'momentum'
    assert sgd.param_groups[0]["momentum"] == 0.9


def test_other_parameter_groups_and_scheduler_class_are_refused(tmp_path):
    net = nn.Linear(2, 2)
    path = adam_checkpoint(tmp_path / "adam.pt", net)
    fresh = nn.Linear(2, 2)
    grouped = torch.optim.Adam([{"params": [fresh.weight]}, {"params": [fresh.bias], "lr": 0.1}])
    with pytest.raises(ck.CheckpointError, match=r"1 parameter group\(s\) of \[2\] tensors, this run's "
                                                 r"Adam has 2 of \[1, 1\]"):
        ck.restore_training_state(path, fresh, grouped)
    adam = torch.optim.Adam(fresh.parameters())
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(adam, T_max=5)
    with pytest.raises(ck.CheckpointError, match="the scheduler StepLR, but this run's scheduler is CosineAnnealingLR"):
        ck.restore_training_state(path, fresh, adam, cosine)
    assert adam.state_dict()["state"] == {}  # refused before anything was loaded
    epoch, _ = ck.restore_training_state(path, fresh, torch.optim.Adam(fresh.parameters()),
                                         torch.optim.lr_scheduler.StepLR(adam, step_size=1))
    assert epoch == 1


def test_check_state_runs_before_anything_is_loaded(tmp_path):
    net = nn.Linear(2, 2)
    path = tmp_path / "run.pt"
    ck.save_checkpoint(path, ck.training_state(net, epoch=2, history={"train_perplexity": [3.0, 2.0]}))
    fresh = nn.Linear(2, 2)
    weights = [p.detach().clone() for p in fresh.parameters()]

    def wants_accuracy(state):
        if "test_acc" not in state["history"]:
            raise ck.CheckpointError(f"history holds {sorted(state['history'])}, not test_acc")

    with pytest.raises(ck.CheckpointError, match=r"history holds \['train_perplexity'\]"):
        ck.resume_if_requested(path, True, fresh, check_state=wants_accuracy)
    assert all(torch.equal(p, w) for p, w in zip(fresh.parameters(), weights, strict=True))
