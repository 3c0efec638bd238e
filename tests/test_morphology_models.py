"""Networks of the morphology task: e2cnn shim, exact invariance, baselines' shapes."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmobench.errors import ConfigError
from cosmobench.config import resolve
from cosmobench.nn import build_net, count_parameters
from cosmobench.nn.equivariant import parse_group


def model_cfg(name, *overrides):
    """The resolved ``model`` node of morphology model ``name`` (registry defaults + overrides)."""
    return resolve("morphology", name, overrides=list(overrides))["model"]


def make_net(name, n_bands, n_classes, size, *overrides):
    return build_net(name, model_cfg(name, *overrides), n_bands=n_bands, n_classes=n_classes, image_size=size)


def e2cnn(n_bands, n_classes, size, group, channels):
    return make_net("e2cnn", n_bands, n_classes, size, f"model.group={group}",
               f"model.channels=[{','.join(map(str, channels))}]")

warnings.filterwarnings("ignore", category=UserWarning)


def test_compat_shim_patches_numpy2_breakages():
    from cosmobench.nn import e2cnn_compat
    import e2cnn.kernels.irreps_basis as ib
    from e2cnn import gspaces
    from e2cnn import nn as enn

    assert hasattr(np, "float")
    assert "R2FlipsDiscreteRotationsSolution" in e2cnn_compat.PATCHED or \
        ib.R2FlipsDiscreteRotationsSolution.__hash__ is e2cnn_compat._irrep_basis_hash
    assert e2cnn_compat.apply() == []  # idempotent
    gs = gspaces.FlipRot2dOnR2(N=8)  # builds R2FlipsDiscreteRotationsSolution bases (hashed)
    t_in = enn.FieldType(gs, 2 * [gs.trivial_repr])
    t_out = enn.FieldType(gs, 2 * [gs.regular_repr])
    conv = enn.R2Conv(t_in, t_out, kernel_size=3, padding=1)
    assert conv(enn.GeometricTensor(torch.randn(1, 2, 9, 9), t_in)).tensor.shape == (1, 32, 9, 9)
    basis = ib.R2FlipsDiscreteRotationsSolution(gs.fibergroup, (0, 0), (1, 1), axis=0.0, max_frequency=2)
    assert isinstance(hash(basis), int)


def _d4(x, g):
    y = torch.rot90(x, g % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if g >= 4 else y


def _trained(net, size, steps=3):
    """A few optimisation steps so that weights and BN statistics are far from their init."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        x, y = torch.randn(8, 3, size, size), torch.randint(0, 5, (8,))
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def _max_change(net, x, elements):
    with torch.no_grad():
        p = net(x).softmax(1)
        return max((net(_d4(x, g)).softmax(1) - p).abs().max().item() for g in elements)


@pytest.mark.parametrize("size", [32, 33])
def test_e2cnn_d8_is_exactly_invariant_to_rot90_and_flips(size):
    torch.manual_seed(1)
    net = _trained(e2cnn(3, 5, size, "D8", (2, 4, 4)), size)
    x = torch.randn(4, 3, size, size) * 3
    assert _max_change(net, x, range(1, 8)) < 1e-4
    # the logits are far from uniform, so the test would see a broken invariance
    with torch.no_grad():
        assert net(x).softmax(1).max() > 0.3


def test_e2cnn_c8_rotation_invariant_plain_cnn_not():
    torch.manual_seed(2)
    net = _trained(e2cnn(3, 5, 32, "C8", (2, 4, 4)), 32)
    x = torch.randn(4, 3, 32, 32) * 3
    assert _max_change(net, x, (1, 2, 3)) < 1e-4
    cnn = _trained(make_net("cnn", 3, 5, 32, "model.channels=[8,8,8]"), 32)
    assert _max_change(cnn, x, range(1, 8)) > 1e-5  # >> float rounding (~1e-7)


def test_default_models_have_comparable_size_and_right_shapes():
    nets = {}
    for name in ("e2cnn", "cnn", "resnet18"):
        cfg = resolve("morphology", name)
        nets[name] = build_net(name, cfg["model"], n_bands=3, n_classes=6, image_size=32)
        assert nets[name](torch.randn(2, 3, 32, 32)).shape == (2, 6)
    ratio = count_parameters(nets["cnn"]) / count_parameters(nets["e2cnn"])
    assert 0.67 < ratio < 1.5


@pytest.mark.parametrize("size,stride", [(64, None), (32, None), (20, 1), (48, 2)])
def test_resnet18_adapts_to_size_and_bands(size, stride):
    r = make_net("resnet18", 5, 4, size, f"model.stem_stride={'null' if stride is None else stride}")
    assert r.conv1.in_channels == 5
    assert r(torch.randn(2, 5, size, size)).shape == (2, 4)


def test_bad_model_settings():
    assert parse_group("d16") == (True, 16) and parse_group("C4") == (False, 4)
    for bad in ("E8", "D", "D0", "SO2"):
        with pytest.raises(ConfigError, match="model.group"):
            parse_group(bad)
    with pytest.raises(ConfigError, match="kernel_sizes"):
        make_net("cnn", 3, 2, 16, "model.channels=[4,4]", "model.kernel_sizes=[4,3]")
    with pytest.raises(ConfigError, match="stem_stride"):
        make_net("resnet18", 3, 2, 16, "model.stem_stride=3")
    with pytest.raises(ConfigError, match="no network 'vit'"):
        build_net("vit", {}, n_bands=3, n_classes=2, image_size=16)
    with pytest.raises(ConfigError, match="no model 'mdn'; choose one of "):
        resolve("morphology", "mdn")
    with pytest.raises(ConfigError, match="model.widht"):
        model_cfg("cnn", "model.widht=3")
    with pytest.raises(ConfigError, match="'hidden'"):
        build_net("cnn", {"channels": [4], "kernel_sizes": None, "dropout": 0.0}, n_bands=3, n_classes=2,
                  image_size=16)


def test_e2cnn_state_dict_excludes_cached_filters_and_reload_refreshes_them():
    torch.manual_seed(3)
    a = e2cnn(3, 4, 16, "D8", (2, 2)).eval()
    b = e2cnn(3, 4, 16, "D8", (2, 2)).eval()  # different random weights, cached filters
    keys = list(a.state_dict())
    assert not [k for k in keys if k.endswith((".filter", ".expanded_bias"))]
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))
        b.load_state_dict(a.state_dict())  # strict: no missing/unexpected cache keys
        torch.testing.assert_close(b(x), a(x))  # the eval-mode cache was rebuilt from the new weights
    # checkpoints written by older code (cache included) still load
    sd = dict(a.state_dict())
    sd["features.0.filter"] = torch.zeros(1)
    b.load_state_dict(sd)


TINY_NET = '''
from dataclasses import dataclass

from torch import nn

from cosmobench.nn import register_net
from cosmobench.settings import setting


@dataclass
class TinyNetConfig:
    width: int = setting(4, "positive int", help="channels of the one convolution")


@register_net("tinynet", TinyNetConfig, kind="image_classifier")
class TinyNet(nn.Module):
    def __init__(self, cfg, *, n_bands, n_classes, image_size):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_bands, cfg.width, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(cfg.width, n_classes))

    def forward(self, x):
        return self.body(x)
'''


def test_a_new_image_classifier_network_is_a_model_of_both_tasks(tmp_path, monkeypatch):
    """Registering a network of kind image_classifier (a plugin's one file) makes it a model of
    morphology and lensfinding, with its declared settings, without touching a task file."""
    import importlib

    import cosmobench
    from cosmobench import nn as cnn_registry
    from cosmobench.config import resolve
    from cosmobench.registry import get_task

    (tmp_path / "cb_tinynet_plugin.py").write_text(TINY_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("cb_tinynet_plugin")
    try:
        conf = Path(__file__).parent / "conf"
        for task in ("morphology", "lensfinding"):
            assert "tinynet" in get_task(task).models
            node = resolve(task, "tinynet", overrides=["model.width=3"])["model"]
            # the network's own setting, plus the task's recipe for every network (transfer settings)
            assert node["name"] == "tinynet" and node["width"] == 3 and "init_from" in node
            result = cosmobench.train(task, "tinynet", overrides=["model.width=3", "logger=none", "plots=false"],
                                      config_file=conf / f"{task}.yaml", root=tmp_path / "runs")
            assert result.metrics["accuracy"] >= 0 and np.isfinite(result.metrics["nll"])
    finally:
        cnn_registry._RUNTIME.pop("tinynet", None)
