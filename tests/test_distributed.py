"""Data-parallel training under torchrun matches a single process on the same global batch."""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import distributed as dd
from course_utils.loaders import tensor_loader

REPO = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent('''
    import sys
    import torch
    from torch import nn
    from course_utils.loaders import tensor_loader
    from course_utils.training import train_classifier
    from course_utils import distributed

    def data():
        g = torch.Generator().manual_seed(0)
        X = torch.randn(96, 6, generator=g)
        y = (X[:, 0] + X[:, 1] > 0).long()
        return X, y

    def make_net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))

    def run(shuffle):
        X, y = data()
        net = make_net()
        h = train_classifier(net, tensor_loader(X, y, batch_size=16, shuffle=shuffle),
                             tensor_loader(X, y, batch_size=32), nn.CrossEntropyLoss(),
                             torch.optim.SGD(net.parameters(), lr=0.5), 3, progress=False, plot=False)
        return net, h

    if __name__ == "__main__":
        net, h = run(shuffle=sys.argv[2] == "shuffle")
        if distributed.is_main_process():
            torch.save({"state": net.state_dict(), "test_acc": h.test_acc, "loss": h.train_loss,
                        "world": distributed.world_size()}, sys.argv[1])
        distributed.cleanup()
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    for (a,), (b,), (full,) in zip(shards[0], shards[1], loader):
        assert sorted(torch.cat([a, b]).tolist()) == full.tolist()
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


@pytest.mark.slow
@pytest.mark.parametrize("order", ["fixed", "shuffle"])
def test_torchrun_two_processes_match_single_process(tmp_path, order):
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("WORLD_SIZE", None)
    single = tmp_path / "single.pt"
    multi = tmp_path / "multi.pt"
    subprocess.run([sys.executable, str(script), str(single), order], check=True, env=env,
                   timeout=300, cwd=tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}", str(script), str(multi), order]
    result = subprocess.run(cmd, env=env, timeout=300, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    a = torch.load(single, weights_only=True)
    b = torch.load(multi, weights_only=True)
    assert a["world"] == 1 and b["world"] == 2
    if order == "fixed":  # the same global batches: the same parameters
        for key in a["state"]:
            torch.testing.assert_close(a["state"][key], b["state"][key], rtol=1e-5, atol=1e-6)
        assert a["test_acc"] == b["test_acc"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    else:  # shuffled: another order of the same data, so only the quality must agree
        assert abs(a["test_acc"][-1] - b["test_acc"][-1]) < 0.1
