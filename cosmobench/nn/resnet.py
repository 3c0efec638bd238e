"""torchvision ResNet adapted to small astronomical images (any number of bands)."""
from __future__ import annotations

from torch import nn

from cosmobench.errors import ConfigError

STEM_STRIDES = (1, 2, 4)


def auto_stem_stride(image_size: int) -> int:
    """The power of two that brings the image to ~16 px before ``layer1``: 4 for >= 64 px,
    2 for >= 24 px, else 1."""
    return 4 if image_size >= 64 else (2 if image_size >= 24 else 1)


def resnet18(n_bands: int, n_classes: int, image_size: int, *, stem_stride: int | None) -> nn.Module:
    """torchvision ResNet-18 (``weights=None``: random init, no download) adapted to the data.

    Input ``(B, n_bands, H, W)``, output logits ``(B, n_classes)``. The stem is replaced so
    that it takes ``n_bands`` channels and downsamples by ``stem_stride`` (1, 2 or 4; None:
    :func:`auto_stem_stride`). Stride 4 keeps torchvision's 7x7/2 conv + max-pool stem;
    stride 2 uses a 3x3/2 conv, stride 1 a 3x3/1 conv, no max-pool.
    """
    from torchvision.models import resnet18 as tv_resnet18

    if stem_stride is None:
        stem_stride = auto_stem_stride(int(image_size))
    if stem_stride not in STEM_STRIDES:
        raise ConfigError(f"model.stem_stride must be 1, 2 or 4 (or null for auto), got {stem_stride}")
    net = tv_resnet18(weights=None, num_classes=n_classes)
    if stem_stride == 4:
        net.conv1 = nn.Conv2d(n_bands, 64, kernel_size=7, stride=2, padding=3, bias=False)
    else:
        net.conv1 = nn.Conv2d(n_bands, 64, kernel_size=3, stride=stem_stride, padding=1, bias=False)
        net.maxpool = nn.Identity()
    return net


__all__ = ["resnet18", "auto_stem_stride", "STEM_STRIDES"]
