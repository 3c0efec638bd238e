"""Transfer suites (cosmobench.bench.transfer) and the shift report (cosmobench.shift), end to end
on a tiny generated file with the Galaxy10 DECaLS layout placed in a private COSMOBENCH_DATA
cache (random pixels: the mechanics are tested, not the science). No network; the ImageNet
strategy is left out because TORCH_HOME is empty."""
import json
from pathlib import Path

import numpy as np
import pytest

from cosmobench.bench.transfer import is_transfer_suite, load_transfer
from cosmobench.errors import ConfigError
from tests.conftest import run_cli, run_dirs

ROOT = Path(__file__).parents[1]

PRETRAIN = """
data: {source: sim, label_scheme: galaxy10, bands: [g, r, z], image_size: 16, pixel_scale: 1.048, oversample: 2,
       n_train: 24, n_val: 8, n_test: 8, batch_size: 8, classes: [elliptical, spiral, edge_on]}
model: {channels: [4, 8, 8]}
trainer: {max_epochs: 1}
"""
REAL = """
data: {dataset: galaxy10-decals, image_size: 16, crop: 64, val_fraction: 0.2, test_fraction: 0.3, batch_size: 8}
trainer: {max_epochs: 1}
"""
SUITE = """
description: tiny transfer suite
task: morphology
seeds: 1
overrides: [logger=none, plots=false, trainer.enable_progress_bar=false]
grid: {data.subset: [10, null]}
pretrain: {model: cnn, config: pre.yaml, seed: 0}
strategies:
  scratch: {model: cnn, config: real.yaml, overrides: ["model.channels=[4,8,8]"]}
  sim+ft: {model: cnn, config: real.yaml, overrides: ["model.init_from={pretrain}", "model.channels=[4,8,8]",
                                                      model.freeze_epochs=1]}
  sim-only: {test: pretrain, config: real.yaml}
  imagenet: {model: resnet18, config: real.yaml, overrides: [model.pretrained=imagenet, model.stem_stride=4]}
"""


def write_suite(d: Path, text: str = SUITE) -> Path:
    (d / "pre.yaml").write_text(PRETRAIN)
    (d / "real.yaml").write_text(REAL)
    (d / "transfer_tiny.yaml").write_text(text)
    return d / "transfer_tiny.yaml"


def galaxy10_cache(cache: Path, n: int = 60) -> None:
    import h5py
    d = cache / "galaxy10-decals"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with h5py.File(d / "Galaxy10_DECals.h5", "w") as fh:
        fh["images"] = rng.integers(0, 255, (n, 256, 256, 3), dtype=np.uint8)
        fh["ans"] = np.array([2, 7, 8] * (n // 3), np.uint8)


def test_transfer_suite_file_errors(tmp_path):
    path = write_suite(tmp_path)
    assert is_transfer_suite(path) and not is_transfer_suite(ROOT / "experiments" / "suites" / "quick.yaml")
    ts = load_transfer(path)
    assert ts.curve == "data.subset" and list(ts.strategies) == ["scratch", "sim+ft", "sim-only", "imagenet"]
    assert ts.strategies["sim-only"]["test"] and ts.pretrain["config"] == str((tmp_path / "pre.yaml").resolve())
    bad = {"unknown keys \\['bogus'\\]": SUITE + "bogus: 1\n",
           "give either model .* or test: pretrain": SUITE.replace("{test: pretrain,", "{test: pretrain, model: cnn,"),
           "curve must be one of the grid keys": SUITE + "curve: data.crop\n",
           "cannot change model./optim.": SUITE.replace("sim-only: {test: pretrain, config: real.yaml}",
                                                        "sim-only: {test: pretrain, overrides: [model.dropout=0.1]}"),
           "config layer 'nope.yaml' not found": SUITE.replace("config: pre.yaml", "config: nope.yaml")}
    for msg, text in bad.items():
        with pytest.raises(ConfigError, match=msg):
            load_transfer(write_suite(tmp_path, text))


@pytest.mark.slow
def test_transfer_suite_end_to_end_and_shift(tmp_path, monkeypatch):
    cache, root = tmp_path / "data", tmp_path / "runs"
    root.mkdir()
    galaxy10_cache(cache)
    env = {"COSMOBENCH_DATA": str(cache), "TORCH_HOME": str(tmp_path / "torch")}
    suite = write_suite(tmp_path)
    r = run_cli(["bench", str(suite), "--jobs", "2"], root, env=env, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "strategy 'imagenet' left out: model.pretrained=imagenet:" in r.stderr and "not cached" in r.stderr
    assert "not run: strategy 'imagenet'" in r.stdout
    for s in ("| 10 | scratch |", "| all | sim+ft |", "| 10 | sim-only |", "vs scratch"):
        assert s in r.stdout, r.stdout
    man = json.loads((root / "suites" / "transfer_tiny.json").read_text())
    assert man["grid_keys"] == ["data.subset"] and set(man["transfer"]["left_out"]) == {"imagenet"}
    assert {j["grid"]["strategy"] for j in man["jobs"]} == {"scratch", "sim+ft", "sim-only"} and len(man["jobs"]) == 6
    shift = man["transfer"]["shift"]
    assert shift["metric"] == "accuracy" and shift["gap"] == pytest.approx(shift["real_zero_shot"] - shift["sim_test"])
    # fine-tuning kept the pretrained head (same Galaxy10 class names) and loaded the pretraining checkpoint
    ckpt = man["transfer"]["pretrain"]["checkpoint"]
    inits = [json.loads(p.read_text()) for p in (root / "morphology" / "cnn").glob("*/init.json")]
    assert len(inits) == 2 and all(i["source"] == ckpt and "head.3.weight" in i["loaded"] for i in inits)
    # the leaderboard draws the learning curve: one series per strategy, two points each, on the real track
    from cosmobench import leaderboard
    board = leaderboard.load(root)
    (curve,) = [c for c in board.curves if c["suite"] == "transfer_tiny"]
    assert curve["key"] == "data.subset" and len(curve["series"]) == 3
    assert all(len(p) == 2 and {x for x, *_ in p} == {10, None} for p in curve["series"].values())
    html = leaderboard.to_html(board)
    assert "learning curve: accuracy vs data.subset" in html and "data:image/png;base64," in html
    # a zero-shot config equal to a trained job's would share its experiment hash: refused before any test
    from cosmobench.bench.transfer import _zero_shot
    monkeypatch.setenv("COSMOBENCH_DATA", str(cache))
    ts = load_transfer(suite)
    zs = [j for j in man["jobs"] if j["grid"]["strategy"] == "sim-only"]
    with pytest.raises(ConfigError, match="equals that of the training strategy 'scratch'"):
        _zero_shot(ts, "sim-only", ts.strategies["sim-only"], Path(ckpt), root, False, print,
                   trained={zs[0]["config_hash"]: "scratch"})
    # again: every job is done, nothing runs
    r = run_cli(["bench", str(suite)], root, env=env, timeout=1800)
    assert r.returncode == 0 and "2 zero-shot tests" in r.stderr and "2 already done" in r.stderr, r.stderr[-2000:]
    n_runs = len(run_dirs(root, "morphology", "cnn"))
    # shift: the pretrained checkpoint on its simulator test set and on the (stand-in) Galaxy10 test split
    r = run_cli(["shift", "morphology", "--checkpoint", ckpt, "data.n_test=4"], root, env=env)  # same data: refused
    assert r.returncode == 2 and "describes the data the checkpoint was trained on" in r.stderr, r.stderr[-2000:]
    r = run_cli(["shift", "morphology", "--checkpoint", ckpt, "-c", str(tmp_path / "real.yaml")], root, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "source sim" in r.stdout and "target real:galaxy10-decals" in r.stdout and r.stdout.startswith("metric")
    assert len(run_dirs(root, "morphology", "cnn")) == n_runs + 2
    (report,) = [json.loads(p.read_text()) for p in (root / "morphology" / "cnn").glob("*/shift.json")]
    assert report["gap"]["accuracy"] == pytest.approx(report["target"]["metrics"]["accuracy"]
                                                      - report["source"]["metrics"]["accuracy"])
