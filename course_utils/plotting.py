"""Plotting helpers: figure size, multi-line plots, image grids and a live training plot.

:class:`LivePlot` redraws one figure in place inside Jupyter; in plain Python or CI (no
display) it draws nothing on screen, and can save a PNG instead (``save_path``).
:class:`TrainingMonitor` is what a training loop shows while it runs: a progress bar over the
batches and a :class:`LivePlot` of the per-epoch metrics. Needs matplotlib, and IPython and
tqdm where they are used (both come with Jupyter).

Introduced in ``notebooks/04_softmax_regression.ipynb``.
Copy with: ``atomic_write.py``.

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
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

if __package__:  # part of course_utils (or of your own package)
    from .atomic_write import atomic_write
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from atomic_write import atomic_write

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
    for x, y, fmt, label in zip(X, Y, list(fmts) * (len(Y) // len(fmts) + 1), labels, strict=False):
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
    """A figure that grows as training runs (d2l's ``Animator``): one line per metric, with
    markers (so the first epoch's single point shows) and integer epoch ticks.

    ``legend`` fixes the lines and their order; without it, lines appear as new names arrive.

    >>> live = LivePlot(xlabel="epoch", legend=["train loss", "test acc"], title="softmax regression")
    >>> live.add(1, {"train loss": 0.9, "test acc": 0.6})
    >>> live.finish()
    """

    def __init__(
        self,
        *,
        xlabel: str = "epoch",
        ylabel: str | None = None,
        legend: Sequence[str] | None = None,
        xlim: tuple[float, float] | None = None,
        ylim: tuple[float, float] | None = None,
        yscale: str = "linear",
        title: str | None = None,
        figsize: tuple[float, float] = (4.5, 3.0),
        min_interval: float = 0.5,
        save_path: str | os.PathLike[str] | None = None,
        show: bool | None = None,
    ) -> None:
        if legend is not None and not legend:
            raise ValueError("LivePlot needs the names of its lines (legend), or legend=None")
        self.fixed = legend is not None
        self.legend = list(legend or [])
        self.xs: dict[str, list[float]] = {name: [] for name in self.legend}
        self.ys: dict[str, list[float]] = {name: [] for name in self.legend}
        self.xlabel, self.ylabel, self.title = xlabel, ylabel, title
        self.xlim, self.ylim, self.yscale = xlim, ylim, yscale
        self.figsize = figsize
        self.min_interval = min_interval
        self.save_path = Path(save_path) if save_path is not None else None
        self.show = in_notebook() if show is None else show
        self._handle: Any = None
        self._last_draw = 0.0
        self._fig: Figure | None = None

    def add(self, x: float, values: Mapping[str, float | None]) -> None:
        """Add one point per named line (``None`` values are skipped); redraw if due."""
        for name, value in values.items():
            if name not in self.xs:
                if self.fixed:
                    raise KeyError(f"unknown line {name!r}; this plot has {self.legend}")
                self.legend.append(name)
                self.xs[name], self.ys[name] = [], []
            if value is None:
                continue
            self.xs[name].append(float(x))
            self.ys[name].append(float(value))
        if self.show and time.monotonic() - self._last_draw >= self.min_interval:
            self._draw()

    def _render(self) -> Figure:
        if self._fig is None:
            self._fig, _ = plt.subplots(figsize=self.figsize)
            plt.close(self._fig)  # keep the inline backend from showing it a second time
        ax = self._fig.axes[0]
        ax.cla()
        fmts = ("-", "m--", "g-.", "r:", "c-", "k--")
        for i, name in enumerate(self.legend):
            ax.plot(self.xs[name], self.ys[name], fmts[i % len(fmts)], marker="o", markersize=4, label=name)
        ax.set_xlabel(self.xlabel)
        if self.xlabel == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if self.ylabel:
            ax.set_ylabel(self.ylabel)
        if self.xlim:
            ax.set_xlim(self.xlim)
        if self.ylim:
            ax.set_ylim(self.ylim)
        ax.set_yscale(self.yscale)
        if self.title:
            ax.set_title(self.title)
        ax.grid(True, alpha=0.3)
        if self.legend:
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
            with atomic_write(self.save_path) as handle:  # a failed write raises WriteError
                fig.savefig(handle, dpi=100, format="png")


def _is_plotted(name: str) -> bool:
    """Times and speeds are not drawn with losses and accuracies."""
    return name != "seconds" and not name.endswith("_per_sec")


class TrainingMonitor:
    """A training loop's display: a tqdm progress bar over batches and a live per-epoch plot.

    ``progress``: ``None`` shows the bar where tqdm decides (not in a non-interactive log),
    ``True`` always, ``False`` never. ``plot``: ``True`` draws every metric except times and
    speeds (``seconds``, ``*_per_sec``), a list draws the metrics it names, ``False`` nothing;
    ``title`` names the run. ``batches_per_epoch`` is a count, or the training loader itself
    (its ``len()``, if it has one; otherwise the bar counts without a total). ``done_epochs``
    are epochs a resumed run has already done: the bar counts only the rest, and
    :meth:`replay` redraws their values.

    >>> with TrainingMonitor(num_epochs=2, batches_per_epoch=3, progress=False, plot=False) as monitor:
    ...     for epoch in (1, 2):
    ...         for _ in range(3):
    ...             monitor.step(loss=0.5)
    ...         monitor.epoch(epoch, {"train_loss": 0.5, "seconds": 0.1})
    """

    def __init__(
        self,
        *,
        num_epochs: int,
        batches_per_epoch: int | Any | None,
        done_epochs: int = 0,
        progress: bool | None = None,
        plot: bool | Sequence[str] = True,
        title: str | None = None,
    ) -> None:
        self.bar: Any = None
        self.live: LivePlot | None = None
        if batches_per_epoch is not None and not isinstance(batches_per_epoch, int):
            try:
                batches_per_epoch = len(batches_per_epoch)
            except TypeError:  # an iterable without a length
                batches_per_epoch = None
        if progress is not False:
            from tqdm.auto import tqdm

            total = None if batches_per_epoch is None else batches_per_epoch * max(0, num_epochs - done_epochs)
            self.bar = tqdm(total=total, desc="training", unit="batch", leave=False,
                            disable=None if progress is None else False)
        self.names = None if isinstance(plot, bool) else list(plot)
        if plot is not False and self.names != []:
            self.live = LivePlot(legend=self.names, xlim=(0.5, num_epochs + 0.5), title=title)

    def step(self, **postfix: Any) -> None:
        """One batch done; ``postfix`` (e.g. ``loss=0.42``) updates the bar's text."""
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in postfix.items()},
                                     refresh=False)
            self.bar.update(1)

    def epoch(self, epoch: int, values: Mapping[str, float | None]) -> None:
        """Add one epoch's values to the live plot."""
        if self.live is not None:
            names = self.names if self.names is not None else [k for k in values if _is_plotted(k)]
            self.live.add(epoch, {name: values.get(name) for name in names})

    def replay(self, epochs: Sequence[int], metrics: Mapping[str, Sequence[float]]) -> None:
        """Draw the epochs a resumed run did before (``metrics``: one list per name)."""
        for i, epoch in enumerate(epochs):
            self.epoch(epoch, {name: values[i] for name, values in metrics.items()})

    def close(self) -> None:
        """Close the bar and draw the plot a last time."""
        if self.bar is not None:
            self.bar.close()
        if self.live is not None:
            self.live.finish()

    def __enter__(self) -> TrainingMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
