import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_set_figsize():
    plotting.set_figsize((5, 3))
    assert tuple(plt.rcParams["figure.figsize"]) == (5, 3)
    with pytest.raises(ValueError):
        plotting.set_figsize((0, 3))


def test_plot_multiple_lines_with_labels():
    x = torch.arange(5.0)
    ax = plotting.plot(x, [x, x**2], xlabel="x", ylabel="f(x)", legend=["x", "x²"],
                       xlim=(0, 4), ylim=(0, 20), yscale="linear", title="powers")
    assert len(ax.lines) == 2 and ax.get_xlabel() == "x" and ax.get_ylabel() == "f(x)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["x", "x²"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), (x**2).numpy())


def test_plot_single_series_and_existing_axes():
    fig, axes = plt.subplots()
    ax = plotting.plot([3, 1, 2], axes=axes)
    assert ax is axes and list(ax.lines[0].get_ydata()) == [3, 1, 2]
    ax = plotting.plot(np.arange(3), np.arange(3) * 2)
    assert len(ax.lines) == 1
    with pytest.raises(ValueError, match="legend"):
        plotting.plot([0, 1], [[0, 1], [1, 0]], legend=["only one"])


def test_show_images_grid_and_titles():
    imgs = torch.rand(5, 1, 8, 8)
    axes = plotting.show_images(imgs, 2, 3, titles=list("abcde"))
    assert axes.shape == (2, 3)
    assert [ax.get_title() for ax in axes.flat][:5] == list("abcde")
    assert len(axes.flat[5].images) == 0
    axes = plotting.show_images(torch.rand(2, 3, 8, 8), 1, 2)
    assert axes.flat[0].images[0].get_array().shape == (8, 8, 3)
    with pytest.raises(ValueError):
        plotting.show_images(imgs, 0, 2)
    with pytest.raises(ValueError, match="titles"):
        plotting.show_images(imgs, 1, 5, titles=["a"])
    with pytest.raises(ValueError, match="batch of images"):
        plotting.show_images(torch.rand(8, 8), 1, 1)


def test_live_plot_saves_png_without_display(tmp_path):
    live = plotting.LivePlot(legend=["loss", "acc"], save_path=tmp_path / "live.png", ylim=(0, 1))
    assert live.show is False
    for epoch in range(1, 4):
        live.add(epoch, {"loss": 1 / epoch, "acc": None if epoch == 1 else 0.5})
    live.finish()
    assert (tmp_path / "live.png").stat().st_size > 1000
    assert live.ys["acc"] == [0.5, 0.5]
    with pytest.raises(KeyError, match="unknown line"):
        live.add(4, {"other": 1.0})
    with pytest.raises(ValueError):
        plotting.LivePlot(legend=[])


def test_live_plot_updates_one_display_in_notebooks(monkeypatch):
    shown = []

    class Handle:
        def update(self, fig):
            shown.append(("update", fig))

    import IPython.display

    def fake_display(fig, display_id=False):
        shown.append(("display", fig))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    live = plotting.LivePlot(legend=["loss"], show=True, min_interval=0.0)
    live.add(1, {"loss": 1.0})
    live.add(2, {"loss": 0.5})
    live.finish()
    assert [kind for kind, _ in shown] == ["display", "update", "update"]
    assert len({id(fig) for _, fig in shown}) == 1  # the same figure, redrawn in place


def test_in_notebook_is_false_in_pytest():
    assert plotting.in_notebook() is False


def test_live_plot_has_markers_integer_epoch_ticks_title_and_takes_new_lines():
    live = plotting.LivePlot(title="LeNet", xlim=(0.5, 3.5))
    live.add(1, {"train_loss": 1.0})
    live.add(2, {"train_loss": 0.5, "test_acc": 0.8})  # a line may start later
    fig = live._render()
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["train_loss", "test_acc"]
    assert all(line.get_marker() == "o" for line in ax.lines)  # one point per line is visible
    assert ax.get_title() == "LeNet"
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if 0.5 <= t <= 3.5]
    assert ticks == [1.0, 2.0, 3.0]  # no 1.25, 1.5, ...


def test_training_monitor_counts_remaining_batches_and_replays_past_epochs():
    with plotting.TrainingMonitor(num_epochs=5, batches_per_epoch=4, done_epochs=2, progress=True,
                                  plot=True, title="run") as monitor:
        assert monitor.bar.total == 12  # 3 epochs left of 4 batches
        monitor.replay([1, 2], {"train_loss": [1.0, 0.8], "seconds": [3.0, 3.0]})  # a resumed run's past
        for _ in range(4):
            monitor.step(epoch=3, loss=0.5)
        monitor.epoch(3, {"train_loss": 0.5, "test_acc": 0.7, "seconds": 2.0, "examples_per_sec": 9.0})
        assert monitor.bar.n == 4
    assert monitor.live.ys == {"train_loss": [1.0, 0.8, 0.5], "test_acc": [0.7]}  # no times or speeds
    assert monitor.live.title == "run"
    chosen = plotting.TrainingMonitor(num_epochs=1, batches_per_epoch=None, progress=False,
                                      plot=["val_ppl", "train_ppl"])
    chosen.epoch(1, {"train_loss": 1.0, "train_ppl": 2.7})
    assert chosen.live.legend == ["val_ppl", "train_ppl"] and chosen.live.ys["train_ppl"] == [2.7]
    silent = plotting.TrainingMonitor(num_epochs=1, batches_per_epoch=None, progress=False, plot=False)
    assert silent.bar is None and silent.live is None
    silent.step()  # all no-ops
    silent.epoch(1, {"x": 1.0})
    silent.close()


def test_training_monitor_takes_the_loader_length():
    with plotting.TrainingMonitor(num_epochs=2, batches_per_epoch=[1, 2, 3], progress=True, plot=False) as monitor:
        assert monitor.bar.total == 6
    with plotting.TrainingMonitor(num_epochs=2, batches_per_epoch=iter([1, 2]), progress=True,
                                  plot=False) as monitor:
        assert monitor.bar.total is None
