"""Data-parallel training: examples/ddp_train.py under torchrun matches a single process on the same
global batches."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from course_utils import distributed as dd
from course_utils.loaders import tensor_loader

REPO = Path(__file__).resolve().parent.parent

EXAMPLE = REPO / "examples" / "ddp_train.py"
TEARDOWN_ABORT = "terminate called without an active exception"


def test_strided_sampler_partitions_and_shuffles_per_epoch():
    shards = [list(dd.StridedSampler(10, 3, r, shuffle=False)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(10)) and shards[0] == [0, 3, 6, 9]
    samplers = [dd.StridedSampler(10, 2, r, shuffle=True, seed=1) for r in range(2)]
    first = [list(s) for s in samplers]
    assert sorted(sum(first, [])) == list(range(10))
    for s in samplers:
        s.set_epoch(1)
    assert [list(s) for s in samplers] != first
    assert len(samplers[0]) == 5
    with pytest.raises(ValueError):
        dd.StridedSampler(10, 2, 2, shuffle=False)


def test_shard_loader_splits_every_global_batch():
    X = torch.arange(20)
    loader = tensor_loader(X, batch_size=8)
    shards = [list(dd.shard_loader(loader, 2, r)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 3
    for (a,), (b,), (full,) in zip(shards[0], shards[1], loader, strict=True):
        assert sorted(torch.cat([a, b]).tolist()) == full.tolist()
    whole = [b.tolist() for (b,) in dd.shard_loader(loader)]  # one process: this run's 1 shard, all of it
    assert whole == [b.tolist() for (b,) in loader]
    plain = DataLoader(TensorDataset(X), batch_size=8)
    assert len(list(dd.shard_loader(plain, 2, 1))) == 3
    tiny_tail = tensor_loader(torch.arange(17), batch_size=8)  # last batch of 1 < 2 processes
    counts = [len(list(dd.shard_loader(tiny_tail, 2, r))) for r in range(2)]
    assert counts == [2, 2]
    with pytest.raises(ValueError, match="divisible"):
        dd.shard_loader(tensor_loader(X, batch_size=5), 2, 0)
    with pytest.raises(TypeError):
        dd.shard_loader([1, 2], 2, 0)


def test_single_process_helpers():
    assert dd.rank() == 0 and dd.world_size() == 1 and dd.is_main_process()
    t = torch.tensor(3.0)
    assert dd.all_reduce_sum([t])[0] is t
    dd.cleanup()
    assert not dd.launched_with_torchrun() or os.environ.get("WORLD_SIZE")


def test_sync_processes_sets_the_epoch_and_keeps_a_single_process_loss():
    loader = dd.shard_loader(tensor_loader(torch.arange(20.0), batch_size=4, shuffle=True), 1, 0)
    sync = dd.SyncProcesses(loader)
    assert isinstance(sync.sampler, dd.StridedSampler)

    class Run:
        epoch, count, metrics = 3, 20, {"train_loss": 0.25}

    sync.before_epoch(Run)
    sync.after_epoch(Run)
    assert sync.sampler.epoch == 3 and Run.metrics["train_loss"] == pytest.approx(0.25)


def test_example_script_runs_in_one_process(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", COURSE_DEVICE="cpu")
    env.pop("WORLD_SIZE", None)
    out = tmp_path / "single.pt"
    result = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(out), "--epochs", "2"], env=env,
                            timeout=300, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = torch.load(out, weights_only=True)
    assert saved["world"] == 1 and saved["history"]["epochs"] == [1, 2] and "History(2 epochs" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("order", ["fixed", "shuffle"])
def test_torchrun_two_processes_match_single_process(tmp_path, order, local_ports_lock):
    env = dict(os.environ, OMP_NUM_THREADS="1", COURSE_DEVICE="cpu", PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]))
    env["PYTHONFAULTHANDLER"] = "1"  # a worker that aborts prints where its Python code was
    env.pop("WORLD_SIZE", None)
    single = tmp_path / "single.pt"
    multi = tmp_path / "multi.pt"
    flags = ["--shuffle"] if order == "shuffle" else []
    subprocess.run([sys.executable, str(EXAMPLE), "--out", str(single), *flags], check=True, env=env,
                   timeout=300, cwd=tmp_path)
    # --standalone: torchrun binds its rendezvous store to a port the OS picks at that moment. A port
    # picked here and released first could be taken meanwhile by another test's server or kernel
    # (seen once in CI: a worker aborted and JupyterLab's kernel died at the same second).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(EXAMPLE), "--out", str(multi), *flags]
    result = subprocess.run(cmd, env=env, timeout=300, cwd=tmp_path, capture_output=True, text=True)
    if result.returncode != 0 and TEARDOWN_ABORT in result.stderr:
        # Known, not understood: now and then (about 1 run in 150 under load here, more often in
        # CI) a worker aborts in a thread without Python frames while the process exits, after
        # the training finished. One relaunch; a second abort, or any other failure, fails.
        warnings.warn(f"torchrun worker aborted at exit, relaunching once:\n{result.stderr[:4000]}", stacklevel=1)
        result = subprocess.run(cmd, env=env, timeout=300, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[:6000]
    a = torch.load(single, weights_only=True)
    b = torch.load(multi, weights_only=True)
    assert a["world"] == 1 and b["world"] == 2
    loss_a, loss_b = a["history"]["metrics"]["train_loss"], b["history"]["metrics"]["train_loss"]
    acc_a, acc_b = a["history"]["metrics"]["test_acc"], b["history"]["metrics"]["test_acc"]
    if order == "fixed":  # the same global batches: the same parameters and numbers
        for key in a["state"]:
            torch.testing.assert_close(a["state"][key], b["state"][key], rtol=1e-5, atol=1e-6)
        assert acc_a == acc_b
        assert loss_b == pytest.approx(loss_a, rel=1e-5)
    else:  # shuffled: another order of the same data, so only the quality must agree
        assert abs(acc_a[-1] - acc_b[-1]) < 0.1
