"""torchvision ResNet adapted to small astronomical images (any number of bands)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from cosmobench.nn import register_net
from cosmobench.settings import setting


@dataclass
class ResNetConfig:
    """Hyper-parameters of :func:`resnet18`."""

    stem_stride: int | None = setting(None, [1, 2, 4, None],
                                      help="downsampling of the stem (null: auto, ~16 px before layer1)")

    SEARCH_SPACE: ClassVar[dict] = {"optim.lr": ["log", 3e-4, 1e-2],
                                    "optim.weight_decay": ["choice", [0.0, 1e-4, 1e-3]]}  # cosmobench tune


def auto_stem_stride(image_size: int) -> int:
    """The power of two that brings the image to ~16 px before ``layer1``: 4 for >= 64 px,
    2 for >= 24 px, else 1."""
    return 4 if image_size >= 64 else (2 if image_size >= 24 else 1)


@register_net("resnet18", ResNetConfig, kind="image_classifier")
def resnet18(cfg: ResNetConfig, *, n_bands: int, n_classes: int, image_size: int) -> nn.Module:
    """torchvision ResNet-18 (``weights=None``: random init, no download) adapted to the data.

    Input ``(B, n_bands, H, W)``, output logits ``(B, n_classes)``. The stem is replaced so
    that it takes ``n_bands`` channels and downsamples by ``stem_stride`` (1, 2 or 4; None:
    :func:`auto_stem_stride`). Stride 4 keeps torchvision's 7x7/2 conv + max-pool stem;
    stride 2 uses a 3x3/2 conv, stride 1 a 3x3/1 conv, no max-pool.
    """
    from torchvision.models import resnet18 as tv_resnet18

    stem_stride = cfg.stem_stride if cfg.stem_stride is not None else auto_stem_stride(int(image_size))
    net = tv_resnet18(weights=None, num_classes=n_classes)
    if stem_stride == 4:
        net.conv1 = nn.Conv2d(n_bands, 64, kernel_size=7, stride=2, padding=3, bias=False)
    else:
        net.conv1 = nn.Conv2d(n_bands, 64, kernel_size=3, stride=stem_stride, padding=1, bias=False)
        net.maxpool = nn.Identity()
    return net


__all__ = ["resnet18", "ResNetConfig", "auto_stem_stride"]
