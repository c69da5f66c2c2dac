"""Per-batch image transforms as tensor ops: scale, resize, normalize, random crop and flip.

Transforming a whole batch at once is much faster than a per-image PIL pipeline, and works the
same on CPU and GPU. ``fashion_mnist.py`` and ``cifar10.py`` convert their batches with it.

Introduced in ``notebooks/13_resnet_densenet.ipynb`` (augmentation with random crops and flips).
Copy alone.

>>> t = ImageBatchTransform(crop_padding=4, hflip=True, generator=torch.Generator().manual_seed(0))
>>> X, y = t((torch.zeros(8, 3, 32, 32, dtype=torch.uint8), torch.arange(8)))
>>> X.shape, X.dtype
(torch.Size([8, 3, 32, 32]), torch.float32)
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["random_crop", "random_hflip", "ImageBatchTransform"]


def _check_images(X: torch.Tensor) -> None:
    if X.dim() != 4:
        raise ValueError(f"expected a batch of images (B, C, H, W), got shape {tuple(X.shape)}")


def random_crop(X: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad each image by ``padding`` pixels and cut a random crop of the original size.

    One random offset per image, all crops done with a single indexing operation.
    """
    _check_images(X)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return X
    B, C, H, W = X.shape
    padded = F.pad(X, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (B,), generator=generator).to(X.device)
    dx = torch.randint(0, 2 * padding + 1, (B,), generator=generator).to(X.device)
    rows = (dy[:, None] + torch.arange(H, device=X.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(W, device=X.device))[:, None, None, :]
    batch = torch.arange(B, device=X.device)[:, None, None, None]
    channel = torch.arange(C, device=X.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_hflip(X: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability ``p``."""
    _check_images(X)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    flip = (torch.rand(X.shape[0], generator=generator) < p).to(X.device)
    return torch.where(flip[:, None, None, None], X.flip(-1), X)


class ImageBatchTransform:
    """Turn a uint8 batch ``(B, H, W)`` or ``(B, C, H, W)`` into float ``(B, C, h, w)``.

    In order: scale to [0, 1]; resize (bilinear) if ``resize``; random crop with
    ``crop_padding`` and random horizontal flip if asked (training-time augmentation);
    normalize with ``mean``/``std`` per channel.
    """

    def __init__(
        self,
        resize: int | tuple[int, int] | None = None,
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
        *,
        crop_padding: int = 0,
        hflip: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        if resize is not None:
            size = (resize, resize) if isinstance(resize, int) else tuple(resize)
            if len(size) != 2 or min(size) <= 0:
                raise ValueError(f"resize must be a positive int or (h, w), got {resize!r}")
            self.size: tuple[int, int] | None = (int(size[0]), int(size[1]))
        else:
            self.size = None
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        if self.std is not None and bool((self.std <= 0).any()):
            raise ValueError("std must be positive")
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.generator = generator

    def __call__(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        X, *rest = batch
        if X.dim() == 3:
            X = X.unsqueeze(1)
        if X.dim() != 4:
            raise ValueError(f"expected images of shape (B, H, W) or (B, C, H, W), got {tuple(X.shape)}")
        X = X.float().div_(255.0) if X.dtype == torch.uint8 else X.float()
        if self.size is not None and tuple(X.shape[-2:]) != self.size:
            X = F.interpolate(X, size=self.size, mode="bilinear", align_corners=False)
        if self.crop_padding:
            X = random_crop(X, self.crop_padding, self.generator)
        if self.hflip:
            X = random_hflip(X, 0.5, self.generator)
        if self.mean is not None and self.std is not None:
            X = (X - self.mean.to(X.device)) / self.std.to(X.device)
        return (X, *rest)
