"""cosmobench.nn.unet.UNet: any input size, gradients, translation behaviour, bad arguments."""
import pytest
import torch

from cosmobench.config import resolve
from cosmobench.errors import ConfigError
from cosmobench.nn.unet import UNet as _UNet
from cosmobench.nn.unet import UNetConfig


def UNet(in_channels, out_channels, **kw):
    """The network with its declared defaults except ``kw``."""
    return _UNet(UNetConfig(**kw), in_channels=in_channels, out_channels=out_channels)


@pytest.mark.parametrize("shape", [(17, 23), (1, 1), (64, 64), (33, 8)])
def test_output_shape_any_size(shape):
    torch.manual_seed(0)
    net = UNet(3, 2, base_channels=4, depth=3).eval()
    y = net(torch.randn(2, 3, *shape))
    assert y.shape == (2, 2, *shape)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("kw", [dict(norm="group", upsample="bilinear"), dict(norm="none", padding_mode="reflect"),
                                dict(norm="instance", depth=0)])
def test_variants_run_on_odd_sizes(kw):
    net = UNet(2, 1, base_channels=4, **kw).eval()
    assert net(torch.randn(1, 2, 13, 9)).shape == (1, 1, 13, 9)


def test_gradient_reaches_every_parameter_and_the_input():
    torch.manual_seed(0)
    net = UNet(2, 3, base_channels=4, depth=2, norm="group")
    x = torch.randn(2, 2, 15, 21, requires_grad=True)
    net(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_circular_unet_commutes_with_shifts_by_multiples_of_2_pow_depth():
    torch.manual_seed(0)
    net = UNet(1, 1, base_channels=4, depth=2, norm="group", padding_mode="circular").eval()
    x = torch.randn(1, 1, 16, 24)
    with torch.no_grad():
        y = net(x)
        y_shift = net(torch.roll(x, shifts=(4, -8), dims=(-2, -1)))
        y_odd = net(torch.roll(x, shifts=(1, 0), dims=(-2, -1)))
    assert torch.allclose(y_shift, torch.roll(y, shifts=(4, -8), dims=(-2, -1)), atol=1e-5)
    # a one-pixel shift is not an exact symmetry of stride-2 pooling: the check above could fail
    assert not torch.allclose(y_odd, torch.roll(y, shifts=(1, 0), dims=(-2, -1)), atol=1e-5)


def test_internal_padding_is_cropped_back_at_the_same_offset():
    """13 px is padded to 16 (1 px before, 2 after, zeros) and cropped back: the output must
    equal the run on the explicitly zero-padded 16x16 input cropped at the same offset."""
    torch.manual_seed(0)
    net = UNet(2, 1, base_channels=4, depth=3, norm="none").eval()
    x = torch.randn(1, 2, 13, 13)
    big = torch.zeros(1, 2, 16, 16)
    big[..., 1:14, 1:14] = x
    with torch.no_grad():
        y, y_big = net(x), net(big)
    assert torch.allclose(y, y_big[..., 1:14, 1:14], atol=1e-6)
    assert not torch.allclose(y, y_big[..., 0:13, 0:13], atol=1e-3)


@pytest.mark.parametrize("kw, word", [(dict(depth=-1), "depth"), (dict(norm="layer"), "norm"),
                                      (dict(padding_mode="wrap"), "padding_mode"), (dict(base_channels=0), "base")])
def test_bad_arguments_name_the_problem(kw, word):
    """Bad values are refused by the declared constraints, before a network is built."""
    (key, value), = kw.items()
    with pytest.raises(ConfigError, match=word):
        resolve("massmapping", "unet", overrides=[f"model.{key}={value}"])


def test_wrong_input_channels():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        UNet(3, 1, base_channels=4)(torch.randn(1, 2, 8, 8))
