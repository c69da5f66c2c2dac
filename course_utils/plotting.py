"""Plotting helpers: figure size, multi-line plots, image grids and a live training plot.

:class:`LivePlot` redraws one figure in place inside Jupyter; in plain Python or CI (no
display) it draws nothing on screen, and can save a PNG instead (``save_path``).
:class:`TrainingMonitor` is what a training loop shows while it runs: a progress bar over the
batches and a :class:`LivePlot` of the per-epoch metrics. Depends on matplotlib and (optionally)
IPython and tqdm, so it can be copied alone.

>>> from course_utils.plotting import plot
>>> ax = plot([0, 1, 2], [[0, 1, 4], [0, 1, 8]], xlabel="x", ylabel="y", legend=["x²", "x³"])
>>> ax.get_xlabel()
'x'
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND") and os.name != "nt":
    # Headless and not in a notebook: a non-interactive backend avoids GUI errors.
    try:  # pragma: no cover - depends on how the interpreter was started
        import IPython

        if IPython.get_ipython() is None:
            matplotlib.use("Agg")
    except ImportError:  # pragma: no cover
        matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["set_figsize", "plot", "show_images", "LivePlot", "TrainingMonitor", "in_notebook"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where figures can be displayed and updated)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def set_figsize(figsize: tuple[float, float] = (3.5, 2.5)) -> None:
    """Set the default matplotlib figure size (inches)."""
    if len(figsize) != 2 or min(figsize) <= 0:
        raise ValueError(f"figsize must be two positive numbers, got {figsize!r}")
    plt.rcParams["figure.figsize"] = figsize


def _to_numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _has_one_axis(values: Any) -> bool:
    arr = values if isinstance(values, np.ndarray) else None
    if arr is not None:
        return arr.ndim == 1
    return isinstance(values, list) and (len(values) == 0 or not hasattr(values[0], "__len__"))


def plot(
    X: Any,
    Y: Any = None,
    *,
    xlabel: str | None = None,
    ylabel: str | None = None,
    legend: Sequence[str] | None = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    xscale: str = "linear",
    yscale: str = "linear",
    fmts: Sequence[str] = ("-", "m--", "g-.", "r:", "c-", "k--"),
    title: str | None = None,
    figsize: tuple[float, float] = (3.5, 2.5),
    axes: plt.Axes | None = None,
) -> plt.Axes:
    """Plot one or several lines (like d2l's ``plot``) and return the axes.

    ``X`` alone plots its values against their index. ``Y`` may be one series or a list of
    series; ``X`` may be one series shared by all or one per series. Tensors are accepted.
    """
    if Y is None:
        X, Y = [[]], X
    if hasattr(X, "detach") or isinstance(X, np.ndarray):
        X = _to_numpy(X)
    if hasattr(Y, "detach") or isinstance(Y, np.ndarray):
        Y = _to_numpy(Y)
    if _has_one_axis(X) or (isinstance(X, np.ndarray) and X.ndim == 1):
        X = [X]
    if _has_one_axis(Y) or (isinstance(Y, np.ndarray) and Y.ndim == 1):
        Y = [Y]
    if len(X) != len(Y):
        X = X * len(Y)
    if legend is not None and len(legend) != len(Y):
        raise ValueError(f"legend has {len(legend)} entries for {len(Y)} lines")
    if axes is None:
        _, axes = plt.subplots(figsize=figsize)
    labels = list(legend) if legend else [None] * len(Y)
    for x, y, fmt, label in zip(X, Y, list(fmts) * (len(Y) // len(fmts) + 1), labels):
        y = _to_numpy(y)
        x = _to_numpy(x)
        if len(x):
            axes.plot(x, y, fmt, label=label)
        else:
            axes.plot(y, fmt, label=label)
    axes.set_xscale(xscale)
    axes.set_yscale(yscale)
    if xlim:
        axes.set_xlim(xlim)
    if ylim:
        axes.set_ylim(ylim)
    if xlabel:
        axes.set_xlabel(xlabel)
    if ylabel:
        axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    if legend:
        axes.legend()  # lines carry their labels, so later ax.legend() calls keep them
    axes.grid(True, alpha=0.3)
    return axes


def show_images(
    images: Any,
    num_rows: int,
    num_cols: int,
    titles: Sequence[str] | None = None,
    scale: float = 1.5,
    cmap: str = "gray",
) -> np.ndarray:
    """Show a grid of images (``(N, H, W)``, ``(N, 1, H, W)`` or ``(N, 3, H, W)`` / HWC).

    Returns the array of axes. Extra grid cells stay empty; extra images are not shown.
    """
    if num_rows <= 0 or num_cols <= 0:
        raise ValueError(f"num_rows and num_cols must be positive, got {num_rows}, {num_cols}")
    imgs = _to_numpy(images)
    if imgs.ndim == 4 and imgs.shape[1] in (1, 3) and imgs.shape[-1] not in (1, 3):
        imgs = imgs.transpose(0, 2, 3, 1)
    if imgs.ndim == 4 and imgs.shape[-1] == 1:
        imgs = imgs[..., 0]
    if imgs.ndim not in (3, 4):
        raise ValueError(f"expected a batch of images, got shape {imgs.shape}")
    if titles is not None and len(titles) < min(len(imgs), num_rows * num_cols):
        raise ValueError(f"got {len(titles)} titles for {len(imgs)} images")
    fig, axes = plt.subplots(
        num_rows, num_cols, figsize=(num_cols * scale, num_rows * scale), squeeze=False
    )
    flat = axes.reshape(-1)
    for i, ax in enumerate(flat):
        ax.axis("off")
        if i >= len(imgs):
            continue
        img = imgs[i]
        if img.ndim == 3 and img.dtype != np.uint8:
            img = np.clip(img, 0.0, 1.0)
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return axes


class LivePlot:
    """A figure that grows as training runs (d2l's ``Animator``).

    >>> live = LivePlot(xlabel="epoch", legend=["train loss", "test acc"])
    >>> live.add(1, {"train loss": 0.9, "test acc": 0.6})
    >>> live.finish()
    """

    def __init__(
        self,
        *,
        xlabel: str = "epoch",
        ylabel: str | None = None,
        legend: Sequence[str],
        xlim: tuple[float, float] | None = None,
        ylim: tuple[float, float] | None = None,
        yscale: str = "linear",
        title: str | None = None,
        figsize: tuple[float, float] = (4.5, 3.0),
        min_interval: float = 0.5,
        save_path: str | os.PathLike[str] | None = None,
        show: bool | None = None,
    ) -> None:
        if not legend:
            raise ValueError("LivePlot needs the names of its lines (legend)")
        self.legend = list(legend)
        self.xs: dict[str, list[float]] = {name: [] for name in self.legend}
        self.ys: dict[str, list[float]] = {name: [] for name in self.legend}
        self.settings = dict(xlabel=xlabel, ylabel=ylabel, xlim=xlim, ylim=ylim,
                             yscale=yscale, title=title)
        self.figsize = figsize
        self.min_interval = min_interval
        self.save_path = Path(save_path) if save_path is not None else None
        self.show = in_notebook() if show is None else show
        self._handle: Any = None
        self._last_draw = 0.0
        self._fig: plt.Figure | None = None

    def add(self, x: float, values: Mapping[str, float | None]) -> None:
        """Add one point per named line (``None`` values are skipped); redraw if due."""
        for name, value in values.items():
            if name not in self.xs:
                raise KeyError(f"unknown line {name!r}; this plot has {self.legend}")
            if value is None:
                continue
            self.xs[name].append(float(x))
            self.ys[name].append(float(value))
        if self.show and time.monotonic() - self._last_draw >= self.min_interval:
            self._draw()

    def _render(self) -> plt.Figure:
        if self._fig is None:
            self._fig, _ = plt.subplots(figsize=self.figsize)
            plt.close(self._fig)  # keep the inline backend from showing it a second time
        ax = self._fig.axes[0]
        ax.cla()
        fmts = ("-", "m--", "g-.", "r:", "c-", "k--")
        for i, name in enumerate(self.legend):
            ax.plot(self.xs[name], self.ys[name], fmts[i % len(fmts)], label=name)
        s = self.settings
        ax.set_xlabel(s["xlabel"])
        if s["ylabel"]:
            ax.set_ylabel(s["ylabel"])
        if s["xlim"]:
            ax.set_xlim(s["xlim"])
        if s["ylim"]:
            ax.set_ylim(s["ylim"])
        ax.set_yscale(s["yscale"])
        if s["title"]:
            ax.set_title(s["title"])
        ax.grid(True, alpha=0.3)
        ax.legend()
        self._fig.tight_layout()
        return self._fig

    def _draw(self) -> None:
        fig = self._render()
        self._last_draw = time.monotonic()
        from IPython.display import display

        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)

    def finish(self) -> None:
        """Draw the final state (in Jupyter) and save the PNG if ``save_path`` was given."""
        if self.show:
            self._draw()
        if self.save_path is not None:
            fig = self._render()
            self.save_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.save_path.with_name(self.save_path.name + ".tmp.png")
            fig.savefig(tmp, dpi=100)
            os.replace(tmp, self.save_path)


class TrainingMonitor:
    """A training loop's display: a tqdm progress bar over batches and a live per-epoch plot.

    ``progress``: ``None`` shows the bar where tqdm decides (not in a non-interactive log),
    ``True`` always, ``False`` never. ``plot`` shows the live plot in a notebook and
    ``plot_path`` saves it as a PNG. ``active=False`` (e.g. on every process but rank 0 under
    ``torchrun``) turns both off. ``batches_per_epoch`` is a count, or the training loader itself
    (its ``len()``, if it has one; otherwise the bar shows a count without a total). ``done_epochs`` are epochs a resumed run has already done: the
    bar counts only the rest; pass their values with :meth:`epoch` to redraw them.

    >>> with TrainingMonitor(legend=["train", "validation"], num_epochs=2, batches_per_epoch=3,
    ...                      progress=False, plot=False) as monitor:
    ...     for epoch in (1, 2):
    ...         for _ in range(3):
    ...             monitor.step(loss="0.5")
    ...         monitor.epoch(epoch, {"train": 0.5, "validation": None})
    """

    def __init__(
        self,
        *,
        legend: Sequence[str],
        num_epochs: int,
        batches_per_epoch: int | Any | None,
        done_epochs: int = 0,
        ylabel: str | None = None,
        progress: bool | None = None,
        plot: bool = True,
        plot_path: str | os.PathLike[str] | None = None,
        active: bool = True,
    ) -> None:
        self.bar: Any = None
        self.live: LivePlot | None = None
        if batches_per_epoch is not None and not isinstance(batches_per_epoch, int):
            try:
                batches_per_epoch = len(batches_per_epoch)
            except TypeError:  # an iterable without a length
                batches_per_epoch = None
        if active and progress is not False:
            from tqdm.auto import tqdm

            total = None if batches_per_epoch is None else batches_per_epoch * max(0, num_epochs - done_epochs)
            self.bar = tqdm(total=total, desc="training", unit="batch", leave=False,
                            disable=None if progress is None else False)
        if active and (plot or plot_path is not None):
            self.live = LivePlot(xlabel="epoch", ylabel=ylabel, legend=legend, xlim=(1, num_epochs),
                                 save_path=plot_path, show=None if plot else False)

    def step(self, **postfix: Any) -> None:
        """One batch done; ``postfix`` (e.g. ``loss="0.42"``) updates the bar's text."""
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(**postfix)
            self.bar.update(1)

    def note(self, **postfix: Any) -> None:
        """Update the bar's text without counting a batch."""
        if self.bar is not None:
            self.bar.set_postfix(**postfix)

    def epoch(self, epoch: int, values: Mapping[str, float | None]) -> None:
        """Add one epoch's values to the live plot (``None`` values are skipped)."""
        if self.live is not None:
            self.live.add(epoch, values)

    def close(self) -> None:
        """Close the bar and draw the plot a last time."""
        if self.bar is not None:
            self.bar.close()
        if self.live is not None:
            self.live.finish()

    def __enter__(self) -> "TrainingMonitor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
