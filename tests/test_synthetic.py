"""Synthetic linear data: the statistics it promises, and clear errors."""

import pytest
import torch

from course_utils.synthetic import synthetic_linear_data


def test_synthetic_linear_data_statistics():
    w, b = torch.tensor([2.0, -3.4]), 4.2
    X, y = synthetic_linear_data(w, b, 20_000, noise=0.01, generator=torch.Generator().manual_seed(0))
    assert X.shape == (20_000, 2) and y.shape == (20_000, 1)
    assert abs(X.mean()) < 0.02 and abs(X.std() - 1) < 0.02
    residual = y[:, 0] - (X @ w + b)
    assert abs(residual.std() - 0.01) < 0.001
    coef = torch.linalg.lstsq(torch.cat([X, torch.ones(20_000, 1)], 1), y).solution[:, 0]
    torch.testing.assert_close(coef, torch.tensor([2.0, -3.4, 4.2]), atol=1e-3, rtol=0)


@pytest.mark.parametrize("args, message", [
    ((torch.ones(2, 2), 1.0, 10), "1-D"), ((torch.ones(2), 1.0, 0), "positive"),
])
def test_synthetic_linear_data_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        synthetic_linear_data(*args)
    with pytest.raises(ValueError, match="noise"):
        synthetic_linear_data(torch.ones(2), 1.0, 5, noise=-1)
