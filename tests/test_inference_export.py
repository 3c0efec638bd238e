"""Fast paths of issue 12's performance work: batched ArrayDataset fetching (same batches as
the per-row path, whatever num_workers), the e2cnn export to plain torch, and the inference
path of ``cosmobench predict`` (exported network, precision switch, cache invalidation)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, default_collate

from cosmobench.datamodule import ArrayDataset, EpochSeededSampler, RowBatch, collate_rows
from cosmobench.errors import ConfigError


def _arrays(n=203):
    rng = np.random.default_rng(1)
    return {"x": rng.normal(size=(n, 4)).astype(np.float32), "img": rng.normal(size=(n, 2, 3, 3)),
            "label": rng.integers(0, 5, n), "flag": rng.random(n) > 0.5}


def _per_row_batches(ds, sampler, batch_size):
    """The batches of the pre-batched path: one item per index, torch's default_collate."""
    return [default_collate([ds[i] for i in idx]) for idx in BatchSampler(sampler, batch_size, drop_last=False)]


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert list(x) == list(y)
        for k in x:
            assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape, k
            assert torch.equal(x[k], y[k]), k


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batched_fetch_gives_the_per_row_batches(num_workers):
    ds = ArrayDataset(_arrays())
    for epoch in (0, 3):
        sampler = EpochSeededSampler(len(ds), seed=7)
        sampler.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=32, sampler=sampler, num_workers=num_workers, collate_fn=collate_rows)
        got = list(loader)
        _assert_same(got, _per_row_batches(ds, sampler, 32))
    assert got[-1]["idx"].shape == (203 % 32,)  # the last, short batch


def test_batched_fetch_is_one_op_and_keeps_torch_defaults_working():
    ds = ArrayDataset(_arrays(50))
    rb = ds.__getitems__([4, 0, 4, 49])
    assert isinstance(rb, RowBatch) and len(rb) == 4
    assert torch.equal(rb.batch["idx"], torch.tensor([4, 0, 4, 49]))
    assert torch.equal(rb.batch["x"], ds.arrays["x"][[4, 0, 4, 49]])
    # as a sequence it is the per-row items, so a DataLoader with torch's own collate still works
    for j, i in enumerate([4, 0, 4, 49]):
        assert all(torch.equal(rb[j][k], ds[i][k]) for k in ds[i])
    plain = list(DataLoader(ds, batch_size=8, shuffle=False))
    _assert_same(plain, list(DataLoader(ds, batch_size=8, shuffle=False, collate_fn=collate_rows)))
    # a Subset of an ArrayDataset keeps the parent's row index, as per-row indexing did
    sub = torch.utils.data.Subset(ds, [10, 20, 30])
    (b,) = list(DataLoader(sub, batch_size=3, collate_fn=collate_rows))
    assert torch.equal(b["idx"], torch.tensor([10, 20, 30]))


def test_subclass_overriding_getitem_keeps_its_items():
    class Shifted(ArrayDataset):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            item["x"] = item["x"] + 100
            return item

    ds = Shifted(_arrays(20))
    (b,) = list(DataLoader(ds, batch_size=20, collate_fn=collate_rows))
    assert torch.equal(b["x"], ds.arrays["x"] + 100)


def test_datamodule_loaders_are_seeded_and_independent_of_num_workers():
    from cosmobench import config as C
    from cosmobench.registry import get_task
    from cosmobench.runner import load_classes
    cfg = C.resolve("photoz", None, overrides=["data.n_train=300", "data.n_val=20", "data.n_test=20",
                                               "data.batch_size=64"])
    dm_cls, _ = load_classes(get_task("photoz"))
    batches = {}
    for nw in (0, 2):
        dm = dm_cls({**cfg["data"], "num_workers": nw}, seed=3)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(2)
        batches[nw] = list(loader)
    _assert_same(batches[0], batches[2])
    ds = dm.datasets["train"]
    _assert_same(batches[0], _per_row_batches(ds, loader.sampler, 64))
    assert sorted(torch.cat([b["idx"] for b in batches[0]]).tolist()) == list(range(300))


@pytest.fixture(scope="module")
def e2cnn_pair():
    """A D8 e2cnn with non-trivial batch-norm statistics (a few training steps) and its export."""
    pytest.importorskip("e2cnn")
    from cosmobench.nn import build_net
    torch.manual_seed(0)
    net = build_net("e2cnn", {"group": "D8", "channels": [4, 8], "kernel_sizes": None, "hidden": 16,
                              "dropout": 0.0}, n_bands=2, n_classes=3, image_size=21)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    for _ in range(3):
        x = torch.randn(8, 2, 21, 21) * 3 + 1
        torch.nn.functional.cross_entropy(net(x), torch.randint(0, 3, (8,))).backward()
        opt.step()
        opt.zero_grad()
    exported = net.export()
    return net, exported


def test_e2cnn_export_matches_the_equivariant_network(e2cnn_pair):
    from cosmobench.nn.equivariant import ExportedE2CNN
    net, exported = e2cnn_pair
    assert net.training, "export() leaves the source network's mode alone"
    assert isinstance(exported, ExportedE2CNN) and not exported.training
    assert not any("e2cnn" in type(m).__module__ for m in exported.modules()), "plain torch only"
    net.eval()
    x = torch.randn(16, 2, 21, 21) * 2
    with torch.no_grad():
        ref = net(x)
        torch.testing.assert_close(exported(x), ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(exported(x.contiguous(memory_format=torch.channels_last)), ref, rtol=1e-4, atol=1e-5)
    # an independent copy: changing the source's weights leaves the export unchanged
    before = [p.detach().clone() for p in exported.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, exported.parameters()))


def _classifier(model="e2cnn"):
    from cosmobench.image_classification import ImageClassificationTask

    class Toy(ImageClassificationTask):
        pass

    cfg = {"e2cnn": {"group": "D4", "channels": [4, 8], "kernel_sizes": None, "hidden": 16, "dropout": 0.0},
           "resnet18": {"stem_stride": 2}}[model]
    info = {"n_bands": 2, "image_size": 16, "classes": ["a", "b", "c"], "norm_scale": [1.0, 2.0],
            "norm_mean": [0.1, 0.2], "norm_std": [1.5, 0.5], "stretch": "asinh"}
    torch.manual_seed(0)
    return Toy(model={"name": model, **cfg}, data_info=info)


@pytest.mark.parametrize("model", ["e2cnn", "resnet18"])
def test_predict_path_matches_forward_in_fp32_and_bf16_is_close(model):
    if model == "e2cnn":
        pytest.importorskip("e2cnn")
    task = _classifier(model)
    task.train()
    with torch.no_grad():  # batch-norm running statistics away from their init
        for _ in range(3):
            task(torch.rand(8, 2, 16, 16) * 5)
    task.eval()
    x = torch.rand(12, 2, 16, 16) * 5
    with torch.no_grad():
        ref = task(x).softmax(1)
    task.set_inference_precision("fp32")
    cols = task.predict_outputs({"image": x, "idx": torch.arange(12)})
    probs = torch.stack([cols[f"p_{c}"] for c in "abc"], 1)
    torch.testing.assert_close(probs, ref, rtol=1e-4, atol=1e-5)
    assert torch.equal(cols["pred_label"], probs.argmax(1))
    assert probs.dtype == torch.float32
    task.set_inference_precision("bf16")
    assert task.inference_dtype() == torch.bfloat16
    p16 = task.predict_logits(x).softmax(1)
    assert p16.dtype == torch.float32 and (p16 - ref).abs().max() < 0.05
    with pytest.raises(ConfigError, match="fp16"):
        task.set_inference_precision("fp16")


def _trained_toy(model):
    task = _classifier(model)
    task.train()
    with torch.no_grad():  # batch-norm running statistics away from their init
        for _ in range(3):
            task(torch.rand(8, 2, 16, 16) * 5)
    return task.eval()


def test_predict_runs_in_chunks_and_compiled_with_the_same_logits():
    pytest.importorskip("e2cnn")
    task = _trained_toy("e2cnn")
    assert task.inference_chunk() == 16
    x = torch.rand(37, 2, 16, 16) * 5  # chunks of 16, 16 and 5
    with torch.no_grad():
        ref = task(x)
    task.set_inference_precision("fp32")
    torch.testing.assert_close(task.predict_logits(x), ref, rtol=1e-4, atol=1e-5)
    assert task.predict_logits(x[:0]).shape == (0, 3)
    task.set_inference_compile(True)  # torch.compile; the short last chunk is padded to one shape
    assert "_inference_cache" not in task.__dict__
    torch.testing.assert_close(task.predict_logits(x), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(task.predict_logits(x[:3]), ref[:3], rtol=1e-4, atol=1e-5)


def test_inference_model_is_cached_and_dropped_on_mode_change_and_load():
    task = _classifier("resnet18").eval()
    m = task.inference_model()
    assert task.inference_model() is m
    assert "_inference_cache" not in str(task.state_dict().keys())
    state = {k: v.clone() for k, v in task.state_dict().items()}
    task.load_state_dict(state)
    m2 = task.inference_model()
    assert m2 is not m
    task.train()
    task.eval()
    assert task.inference_model() is not m2


def test_auto_precision_follows_the_cpu():
    from cosmobench.task import native_bf16_cpu
    task = _classifier("resnet18")
    assert task.inference_precision == "auto"
    assert task.inference_dtype("cpu") == (torch.bfloat16 if native_bf16_cpu() else torch.float32)


def test_predict_rejects_an_unknown_precision_before_reading_anything(tmp_path):
    from cosmobench import runner
    with pytest.raises(ConfigError, match="--precision 'fp16'"):
        runner.predict("morphology", None, tmp_path / "missing.h5", tmp_path / "out.csv", precision="fp16")
    assert not (tmp_path / "out.csv").exists()
