"""The fastest precision and memory layout for training a model on this CPU, found by timing it.

Whether bfloat16 autocast or the channels-last layout speeds training up depends on the CPU and
on the model, and CPU flags are a poor guide: on a 2-core AMD EPYC (Zen 4, AVX-512 BF16, no AMX)
bfloat16 with channels-last trained the course's Fashion-MNIST CNN 2.1× as fast as float32,
while on a 2-core Intel Xeon with the same flags bfloat16 was no faster (0.66–1.03×); on a CPU
without native bfloat16 it is emulated and many times slower. So on the CPU, with
``COURSE_PRECISION`` and ``COURSE_CHANNELS_LAST`` unset (``auto``), :func:`choose` times a few
training steps (forward, backward, SGD step) of a copy of the model on the real batch in float32
and in bfloat16 autocast, each in the default and (for a model with 4-d weights) the
channels-last layout, and picks the fastest float32 variant unless a bfloat16 one is faster by
more than :data:`MARGIN` (5 %: on a 2-core Zen 4 EPYC, six repeated timings of the same net gave
float32-to-bfloat16 ratios of 1.05–1.10 for LeNet and 1.51–1.57 for the course's CNN, one
outlier apart; a margin inside that spread would flip between runs). The timing costs
about a second or two, once: the decision is cached per CPU model, torch version, thread count,
model and batch shape in ``~/.cache/course_utils/fast_settings.json``. A damaged or foreign
cache entry is timed again. A cache that cannot be written (a full disk, a read-only folder, a
file-size limit) is no error: training goes on with the measured choice, which this process
remembers instead, one warning names the file and the cause, and the old cache is left as it
was (``atomic_write.py``). Setting either
variable skips the timing: ``settings.precision_report`` and ``channels_last_report`` decide,
as they do on CUDA and Apple MPS, where nothing is timed (no GPU was at hand to time on).

``training.train_classifier`` calls :func:`choose` before its first step and prints the choice.

Introduced in ``notebooks/04_softmax_regression.ipynb`` (through ``training.train_classifier``).
Copy with: ``settings.py``, ``atomic_write.py``.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
>>> X, y = torch.randn(8, 1, 2, 2), torch.randint(0, 3, (8,))
>>> choice = choose(net, X, y, nn.functional.cross_entropy, cache_path=None)
>>> choice.channels_last, sorted(choice.seconds)  # no 4-d weights: the layout is not tried
(False, ['bf16', 'fp32'])
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

if __package__:
    from .atomic_write import WriteError, write_text
    from .settings import channels_last_report, precision_report, timed_per_model
else:  # copied flat next to its siblings
    from atomic_write import WriteError, write_text
    from settings import channels_last_report, precision_report, timed_per_model

__all__ = ["FastSettings", "choose", "time_training_steps", "pick", "default_cache_path", "MARGIN"]

MARGIN = 1.05  # bfloat16 must be this many times as fast as float32 to be chosen
CACHE_VERSION = 1
_NOT_CACHED: dict[Path, dict[str, dict]] = {}
"""Per cache file that could not be written (and was warned about once): the choices measured
in this process, used instead of timing again and written along with the next write that works."""
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Measure = Callable[[nn.Module, torch.Tensor, torch.Tensor, Loss, list[tuple[bool, bool]]], dict[str, float]]


@dataclass(frozen=True)
class FastSettings:
    """What to train with: bfloat16 autocast or not, channels-last or not, and how it was decided.

    ``seconds`` holds the measured seconds per training step of each variant tried (``fp32``,
    ``fp32+cl``, ``bf16``, ``bf16+cl``); empty when nothing was timed."""

    bf16: bool
    channels_last: bool
    how: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return _name(self.bf16, self.channels_last)

    def describe(self) -> str:
        """One line: the choice, its measured speed against plain float32, and how it was made."""
        precision = "bfloat16 autocast" if self.bf16 else "float32"
        text = f"{precision}, {'channels-last' if self.channels_last else 'default'} layout"
        if self.seconds.get("fp32") and self.seconds.get(self.name):
            text += f" ({self.seconds['fp32'] / self.seconds[self.name]:.2f}× the speed of plain float32)"
        return f"{text}: {self.how}"


def _name(bf16: bool, channels_last: bool) -> str:
    return ("bf16" if bf16 else "fp32") + ("+cl" if channels_last else "")


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/course_utils/fast_settings.json`` (default ``~/.cache/...``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "course_utils" / "fast_settings.json"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _key(model: nn.Module, X: torch.Tensor) -> str:
    layout = [(name, tuple(t.shape), str(t.dtype)) for name, t in model.state_dict().items()]
    signature = hashlib.sha256(repr((repr(model), layout, tuple(X.shape), str(X.dtype))).encode()).hexdigest()
    return (f"{_cpu_name()} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
            f"{type(model).__name__} {signature[:16]}")


def time_training_steps(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: Loss,
                        variants: list[tuple[bool, bool]], budget: float = 1.0,
                        clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Seconds per training step (forward, backward, SGD step) of a copy of ``model`` on ``(X, y)``
    for each ``(bf16, channels_last)`` variant: two warm-up steps each (oneDNN prepares its kernels
    on first use), then rounds in which every variant takes one timed step in turn, 2 to 10 rounds
    (as many as fit in ``budget`` seconds). Each variant's time is its fastest step: another
    process can only make a step slower, and taking turns spreads a slow spell (or the process's
    own warming up) over all variants instead of the first one timed."""
    steps = []
    for bf16, channels_last in variants:
        net, inputs = copy.deepcopy(model), X
        if channels_last:
            net, inputs = net.to(memory_format=torch.channels_last), X.contiguous(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-6)

        def one_step(net: nn.Module = net, inputs: torch.Tensor = inputs, optimizer: torch.optim.Optimizer = optimizer,
                     bf16: bool = bf16) -> float:
            tic = clock()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(net(inputs), y).mean()
            optimizer.zero_grad()
            loss.float().backward()
            optimizer.step()
            return clock() - tic

        one_step()
        one_step()
        steps.append((_name(bf16, channels_last), one_step))
    best = {name: float("inf") for name, _ in steps}
    spent, rounds = 0.0, 0
    while rounds < 10 and (rounds < 2 or spent < budget):
        for name, one_step in steps:
            seconds = one_step()
            best[name] = min(best[name], seconds)
            spent += seconds
        rounds += 1
    return best


def pick(seconds: dict[str, float], margin: float = MARGIN) -> str:
    """The variant to use: the fastest float32 one, unless a bfloat16 one is ``margin`` times faster.

    >>> pick({"fp32": 1.0, "fp32+cl": 0.8, "bf16": 0.9, "bf16+cl": 0.5})
    'bf16+cl'
    >>> pick({"fp32": 1.0, "fp32+cl": 0.8, "bf16": 0.9, "bf16+cl": 0.78})  # 0.8 / 0.78 < 1.05: noise
    'fp32+cl'
    """
    fp32 = min((v for v in seconds if v.startswith("fp32")), key=seconds.__getitem__)
    bf16 = [v for v in seconds if v.startswith("bf16")]
    if bf16:
        best = min(bf16, key=seconds.__getitem__)
        if seconds[best] * margin < seconds[fp32]:
            return best
    return fp32


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def _valid(entry: object) -> bool:
    return (isinstance(entry, dict) and entry.get("pick") in ("fp32", "fp32+cl", "bf16", "bf16+cl")
            and isinstance(entry.get("seconds"), dict)
            and all(isinstance(v, (int, float)) and v > 0 for v in entry["seconds"].values()))


def choose(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: Loss, *, bf16: bool | None = None,
           channels_last: bool | None = None, cache_path: str | os.PathLike[str] | None | bool = True,
           measure: Measure | None = None) -> FastSettings:
    """Decide how to train ``model`` on batches like ``(X, y)``: see the module's docstring.

    ``bf16`` / ``channels_last``: ``None`` to decide, ``True``/``False`` to fix (what
    ``mixed_precision=False`` or an explicit layout in ``train_classifier`` do). ``cache_path``:
    ``True`` for :func:`default_cache_path`, ``None`` for no cache. ``measure`` times the variants
    (default :func:`time_training_steps`; tests pass a fake). The global random state is left as it was.
    """
    measure = time_training_steps if measure is None else measure
    device = X.device
    if not timed_per_model(device):  # a setting (or a GPU) decides: settings.py's rules
        bf16 = precision_report(device)[0] == torch.bfloat16 if bf16 is None else bf16
        channels_last = channels_last_report(device)[0] if channels_last is None else channels_last
    if not any(p.dim() == 4 for p in model.parameters()):
        channels_last = False  # only 4-d weights (convolutions) have a channels-last layout
    if bf16 is not None and channels_last is not None:
        return FastSettings(bf16, channels_last, "set, not timed")
    path = None if cache_path is None or cache_path is False else (
        default_cache_path() if cache_path is True else Path(cache_path))
    key = _key(model, X) + f" | bf16 {bf16} | channels-last {channels_last}"
    entries = _read_cache(path) if path is not None else {}
    entry = entries.get(key)
    if _valid(entry):
        assert isinstance(entry, dict)
        chosen = entry["pick"]
        how = f"timed earlier on this machine (cache {path})"
        return FastSettings(chosen.startswith("bf16"), chosen.endswith("+cl"), how, dict(entry["seconds"]))
    if path is not None and key in _NOT_CACHED.get(path, {}):
        entry = _NOT_CACHED[path][key]
        how = f"timed earlier in this process ({path} could not be written)"
        return FastSettings(entry["pick"].startswith("bf16"), entry["pick"].endswith("+cl"), how,
                            dict(entry["seconds"]))
    variants = [(b, c) for b in ([bf16] if bf16 is not None else [False, True])
                for c in ([channels_last] if channels_last is not None else [False, True])]
    with torch.random.fork_rng(devices=[]):  # dropout in the timed steps must not move the lesson's draws
        seconds = measure(model, X, y, loss_fn, variants)
    chosen = pick(seconds)
    how = "timed just now"
    if path is not None:
        entries = _read_cache(path)  # another process may have added entries meanwhile
        entries.update(_NOT_CACHED.get(path, {}))
        entries[key] = {"pick": chosen, "seconds": seconds}
        try:
            write_text(path, json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1) + "\n",
                       elsewhere="set XDG_CACHE_HOME to a folder on another disk")
            how += f" (cached in {path})"
            _NOT_CACHED.pop(path, None)
        except (WriteError, OSError) as error:  # not fatal: remembered in this process, said once
            if path not in _NOT_CACHED:
                warnings.warn(f"the choice of training precision could not be cached ({error}); it is kept "
                              "for this process and timed again in the next one", RuntimeWarning, stacklevel=2)
            _NOT_CACHED.setdefault(path, {})[key] = entries[key]
            how += f" (not cached: {path} could not be written)"
    return FastSettings(chosen.startswith("bf16"), chosen.endswith("+cl"), how, seconds)
