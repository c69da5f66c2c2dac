import random

import numpy as np
import pytest
import torch

from course_utils import settings


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("ON", True),
                                             ("", False), ("0", False), ("no", False)])
def test_smoke_mode_reads_environment(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_SMOKE", value)
    assert settings.smoke_mode() is expected


def test_smoke_mode_rejects_typos(monkeypatch):
    monkeypatch.setenv("COURSE_SMOKE", "ture")
    with pytest.raises(ValueError, match="COURSE_SMOKE"):
        settings.smoke_mode()


def test_choose_follows_smoke_mode(monkeypatch):
    monkeypatch.setenv("COURSE_SMOKE", "1")
    assert settings.choose(full=10, smoke=2) == 2
    monkeypatch.setenv("COURSE_SMOKE", "0")
    assert settings.choose(full=10, smoke=2) == 10


def test_default_device_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(settings, "_mps_available", lambda: False)
    device, why = settings.device_report()
    assert device == torch.device("cpu") and "no CUDA" in why
    assert settings.get_device() == torch.device("cpu")


def test_automatic_choice_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")
    assert settings.device_report()[0].type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(settings, "_mps_available", lambda: True)
    assert settings.device_report()[0].type == "mps"


def test_course_device_override(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    device, why = settings.device_report()
    assert device == torch.device("cpu") and "COURSE_DEVICE" in why


@pytest.mark.parametrize("value, message", [("meta", "only cpu"), ("tpu", "not a device"),
                                            ("not a device!", "not a device"),
                                            ("cuda", "CUDA is not available"),
                                            ("mps", "MPS is not available")])
def test_course_device_errors(monkeypatch, value, message):
    monkeypatch.setenv("COURSE_DEVICE", value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(settings, "_mps_available", lambda: False)
    with pytest.raises(ValueError, match=message):
        settings.device_report()


def test_course_device_cuda_index_out_of_range(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda:3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="only 1"):
        settings.device_report()
    monkeypatch.setenv("COURSE_DEVICE", "cuda:0")
    assert settings.device_report()[0] == torch.device("cuda:0")


def test_seed_everything_makes_runs_repeatable():
    g = settings.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3), torch.rand(2, generator=g))
    g = settings.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3), torch.rand(2, generator=g))
    assert a[0] == b[0] and a[1] == b[1]
    assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


def test_seed_everything_rejects_non_int():
    with pytest.raises(TypeError):
        settings.seed_everything(1.5)  # type: ignore[arg-type]


def test_course_seed_shifts_every_seed_by_the_same_offset(monkeypatch):
    monkeypatch.delenv("COURSE_SEED", raising=False)
    assert settings.seed_offset() == 0 and settings.course_seed(7) == 7
    monkeypatch.setenv("COURSE_SEED", " 3 ")
    assert settings.seed_offset() == 3
    assert [settings.course_seed(s) for s in (0, 1, 1000)] == [3, 4, 1003]


def test_seed_everything_follows_course_seed(monkeypatch):
    monkeypatch.setenv("COURSE_SEED", "2")
    g = settings.seed_everything(5)
    assert g.initial_seed() == 7 and torch.initial_seed() == 7
    shifted = torch.rand(3)
    monkeypatch.delenv("COURSE_SEED")
    settings.seed_everything(7)
    assert torch.equal(torch.rand(3), shifted)  # seed 5 shifted by 2 is seed 7
    settings.seed_everything(5)
    assert not torch.equal(torch.rand(3), shifted)


@pytest.mark.parametrize("value", ["-1", "1.5", "abc", "²", "0x2"])
def test_course_seed_typos_are_errors(monkeypatch, value):
    monkeypatch.setenv("COURSE_SEED", value)
    with pytest.raises(ValueError, match="COURSE_SEED="):
        settings.course_seed(0)
    with pytest.raises(ValueError, match="COURSE_SEED="):
        settings.seed_everything(0)


def test_course_seed_rejects_non_int():
    with pytest.raises(TypeError):
        settings.course_seed("1")  # type: ignore[arg-type]


@pytest.mark.parametrize("value, message", [("cpu:3", "cpu takes no device index"),
                                            ("cpu:0", "cpu takes no device index"),
                                            ("mps:1", "only one MPS device")])
def test_course_device_index_where_there_is_none(monkeypatch, value, message):
    monkeypatch.setenv("COURSE_DEVICE", value)
    monkeypatch.setattr(settings, "_mps_available", lambda: True)
    with pytest.raises(ValueError, match=message) as info:
        settings.device_report()
    assert repr(value) in str(info.value)


def test_precision_follows_course_precision(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv("COURSE_PRECISION", "fp32")
    assert settings.precision_report(cpu)[0] == torch.float32
    with settings.autocast(cpu):
        assert torch.nn.Linear(3, 2)(torch.ones(1, 3)).dtype == torch.float32
    monkeypatch.setenv("COURSE_PRECISION", "bf16")
    assert settings.precision_report(cpu) == (torch.bfloat16, "COURSE_PRECISION=bf16")
    with settings.autocast(cpu):
        assert torch.nn.Linear(3, 2)(torch.ones(1, 3)).dtype == torch.bfloat16
    monkeypatch.setenv("COURSE_PRECISION", "half")
    with pytest.raises(ValueError, match="COURSE_PRECISION='half'"):
        settings.precision_report(cpu)


@pytest.mark.parametrize("precision, layout, timed", [
    ("", "", True), ("auto", "auto", True), ("fp32", "", False), ("", "1", False), ("bf16", "0", False)])
def test_on_the_cpu_precision_and_layout_are_timed_unless_a_setting_decides(monkeypatch, precision, layout, timed):
    monkeypatch.setenv("COURSE_PRECISION", precision)
    monkeypatch.setenv("COURSE_CHANNELS_LAST", layout)
    assert settings.timed_per_model(torch.device("cpu")) is timed
    assert settings.timed_per_model(torch.device("cuda")) is False  # GPUs: the rules, not a stopwatch
    described = settings.describe(torch.device("cpu"))
    assert ("training precision: timed per model | channels_last: timed per model" in described) is timed


def test_automatic_precision_on_cuda_follows_bf16_support(monkeypatch):
    monkeypatch.delenv("COURSE_PRECISION", raising=False)
    for supported, expected in [(True, torch.bfloat16), (False, torch.float32)]:
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert settings.precision_report(torch.device("cuda"))[0] == expected
    assert settings.precision_report(torch.device("mps"))[0] == torch.float32


@pytest.mark.parametrize("value, device, expected", [
    ("", "cpu", True), ("auto", "cuda", True), ("", "mps", False),
    ("0", "cpu", False), ("off", "cuda", False), ("1", "mps", True), ("yes", "cpu", True),
])
def test_channels_last_follows_device_and_setting(monkeypatch, value, device, expected):
    monkeypatch.setenv("COURSE_CHANNELS_LAST", value)
    assert settings.channels_last_report(torch.device(device))[0] is expected


def test_channels_last_setting_rejects_a_typo(monkeypatch):
    monkeypatch.setenv("COURSE_CHANNELS_LAST", "ture")
    with pytest.raises(ValueError, match="COURSE_CHANNELS_LAST='ture'"):
        settings.channels_last_report(torch.device("cpu"))


def test_describe_names_each_choice(monkeypatch):
    monkeypatch.delenv("COURSE_SEED", raising=False)
    monkeypatch.setenv("COURSE_SMOKE", "1")
    monkeypatch.setenv("COURSE_PRECISION", "bf16")
    monkeypatch.setenv("COURSE_CHANNELS_LAST", "0")
    assert settings.describe(torch.device("cpu")) == (
        "smoke mode: True | device: cpu | training precision: bfloat16 | channels_last: off")
    monkeypatch.setenv("COURSE_SEED", "4")  # a shifted seed is said, the default is not
    assert settings.describe(torch.device("cpu")).endswith("channels_last: off | COURSE_SEED: 4")


def test_full_fp32_turns_tf32_off_and_restores_even_after_an_error():
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    try:
        cudnn.allow_tf32, matmul.allow_tf32 = True, True
        with pytest.raises(RuntimeError, match="inside"):
            with settings.full_fp32():
                assert (cudnn.allow_tf32, matmul.allow_tf32) == (False, False)
                raise RuntimeError("inside")
        assert (cudnn.allow_tf32, matmul.allow_tf32) == (True, True)
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved


@pytest.mark.parametrize("value, expected", [("1", True), (" ON ", True), ("Yes", True), ("true", True),
                                             ("", False), ("0", False), ("off", False), ("NO", False)])
def test_env_flag_reads_the_usual_yes_and_no_values(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_SOME_FLAG", value)
    assert settings.env_flag("COURSE_SOME_FLAG") is expected


def test_env_flag_unset_is_false_and_a_typo_names_setting_value_and_usage(monkeypatch):
    monkeypatch.delenv("COURSE_SOME_FLAG", raising=False)
    assert settings.env_flag("COURSE_SOME_FLAG") is False
    monkeypatch.setenv("COURSE_SOME_FLAG", "ture")
    with pytest.raises(ValueError, match=r"^COURSE_SOME_FLAG='ture' is not understood; use 1 or 0$"):
        settings.env_flag("COURSE_SOME_FLAG", "1 or 0")
