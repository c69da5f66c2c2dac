"""fast_settings: precision and layout chosen by a stopwatch (a fake one here), cached, overridable."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from course_utils import fast_settings as fs

X = torch.randn(8, 2, 6, 6)
Y = torch.randint(0, 3, (8,))


def conv_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(64, 3))


class FakeStopwatch:
    """Seconds per step for each variant, and a record of which variants were timed."""

    def __init__(self, **seconds: float) -> None:
        self.seconds = {k.replace("_cl", "+cl"): v for k, v in seconds.items()}
        self.timed: list[str] = []

    def __call__(self, model, X, y, loss_fn, variants):
        names = [fs._name(bf16, channels_last) for bf16, channels_last in variants]
        self.timed += names
        return {name: self.seconds[name] for name in names}


@pytest.fixture(autouse=True)
def auto_settings(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_PRECISION", raising=False)
    monkeypatch.delenv("COURSE_CHANNELS_LAST", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def choose(watch, **kwargs):
    return fs.choose(conv_net(), X, Y, nn.functional.cross_entropy, measure=watch, **kwargs)


@pytest.mark.parametrize("seconds, expected", [
    (dict(fp32=1.0, fp32_cl=0.6, bf16=0.8, bf16_cl=0.3), "bf16+cl"),  # bfloat16 twice as fast: taken
    (dict(fp32=1.0, fp32_cl=0.6, bf16=0.9, bf16_cl=0.58), "fp32+cl"),  # 3 % faster: within noise
    (dict(fp32=1.0, fp32_cl=0.9, bf16=3.0, bf16_cl=2.5), "fp32+cl"),  # emulated bfloat16: slower
    (dict(fp32=0.5, fp32_cl=0.9, bf16=3.0, bf16_cl=2.5), "fp32"),  # channels-last slower for this net
])
def test_the_fastest_variant_wins_and_bfloat16_only_by_a_margin(seconds, expected):
    watch = FakeStopwatch(**seconds)
    choice = choose(watch)
    assert choice.name == expected and sorted(watch.timed) == sorted(watch.seconds)
    assert choice.seconds == watch.seconds and "timed just now" in choice.how
    assert f"{watch.seconds['fp32'] / watch.seconds[expected]:.2f}×" in choice.describe()


def test_the_choice_is_cached_and_not_timed_again():
    first = FakeStopwatch(fp32=1.0, fp32_cl=0.6, bf16=0.8, bf16_cl=0.3)
    assert choose(first).name == "bf16+cl"
    second = FakeStopwatch(fp32=0.1, fp32_cl=0.6, bf16=0.8, bf16_cl=0.3)  # would pick fp32 if asked
    again = choose(second)
    assert again.name == "bf16+cl" and second.timed == [] and "timed earlier" in again.how
    other_batch = fs.choose(conv_net(), X[:4], Y[:4], nn.functional.cross_entropy, measure=second)
    assert other_batch.name == "fp32" and second.timed  # another batch shape is another key


@pytest.mark.parametrize("damage", [
    "not json at all", json.dumps([1, 2]), json.dumps({"version": 99, "entries": {}}),
    "FOREIGN",  # an entry under the right key that is not one of ours
])
def test_a_damaged_or_foreign_cache_is_timed_again_without_an_error(damage):
    watch = FakeStopwatch(fp32=1.0, fp32_cl=0.6, bf16=0.8, bf16_cl=0.3)
    choose(watch)
    path = fs.default_cache_path()
    if damage == "FOREIGN":
        data = json.loads(path.read_text())
        data["entries"] = {key: {"pick": "fp64", "seconds": "fast"} for key in data["entries"]}
        damage = json.dumps(data)
    path.write_text(damage)
    watch.timed.clear()
    assert choose(watch).name == "bf16+cl" and len(watch.timed) == 4
    assert json.loads(path.read_text())["version"] == fs.CACHE_VERSION  # repaired


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root writes into read-only folders")
def test_a_cache_that_cannot_be_written_only_warns(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.warns(RuntimeWarning, match="could not be cached"):
            choice = choose(FakeStopwatch(fp32=1.0, fp32_cl=0.6, bf16=0.8, bf16_cl=0.3),
                            cache_path=folder / "sub" / "fast.json")
    finally:
        folder.chmod(0o700)
    assert choice.name == "bf16+cl"


def test_a_cache_path_that_is_a_folder_only_warns(tmp_path):
    with pytest.warns(RuntimeWarning, match="could not be cached"):
        choice = choose(FakeStopwatch(fp32=1.0, fp32_cl=0.6, bf16=0.8, bf16_cl=0.3), cache_path=tmp_path)
    assert choice.name == "bf16+cl"


@pytest.mark.parametrize("name, value, expected", [
    ("COURSE_PRECISION", "bf16", "bf16+cl"), ("COURSE_PRECISION", "fp32", "fp32+cl"),
    ("COURSE_CHANNELS_LAST", "0", "fp32"),
])
def test_a_setting_turns_the_stopwatch_off(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    watch = FakeStopwatch(fp32=9.0, fp32_cl=9.0, bf16=9.0, bf16_cl=9.0)
    choice = choose(watch)
    assert watch.timed == [] and choice.name == expected and choice.how == "set, not timed"


def test_what_the_caller_fixes_is_not_timed():
    watch = FakeStopwatch(fp32=1.0, fp32_cl=0.6, bf16=0.8, bf16_cl=0.3)
    assert choose(watch, bf16=False).name == "fp32+cl" and sorted(watch.timed) == ["fp32", "fp32+cl"]
    watch.timed.clear()
    linear = nn.Sequential(nn.Flatten(), nn.Linear(72, 3))  # no 4-d weights: no layout to try
    choice = fs.choose(linear, X, Y, nn.functional.cross_entropy, measure=watch)
    assert sorted(watch.timed) == ["bf16", "fp32"] and not choice.channels_last


def test_real_timing_leaves_the_model_and_the_random_state_alone():
    net = conv_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(3)
    state = torch.get_rng_state()
    choice = fs.choose(net, X, Y, nn.functional.cross_entropy, cache_path=None)
    assert torch.equal(torch.get_rng_state(), state)  # the dropout in the timed steps drew on a fork
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert set(choice.seconds) == {"fp32", "fp32+cl", "bf16", "bf16+cl"}
    assert all(0 < s < 5 for s in choice.seconds.values())
