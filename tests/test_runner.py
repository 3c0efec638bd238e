"""Runner behaviour through the CLI on the photoz task: reproducibility, resume after a
kill, DDP on CPU, NaN handling and every bad-input path (exit codes, nothing written)."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import BIN, HERE, db_rows, run_cli, run_dirs

TINY = str(HERE / "conf" / "photoz.yaml")


def metrics_of(root, model="mdn"):
    return [json.loads((d / "metrics.json").read_text()) for d in run_dirs(root, "photoz", model)]


def test_same_seed_same_metrics_other_seed_differs(tmp_path):
    roots = [tmp_path / n for n in ("a", "b", "c")]
    for r, seed in zip(roots, (0, 0, 1)):
        r.mkdir()
        out = run_cli(["train", "photoz", "-c", TINY, f"seed={seed}"], r)
        assert out.returncode == 0, out.stderr[-2000:]
    (a,), (b,), (c,) = (metrics_of(r) for r in roots)
    assert a == b
    assert a != c


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    args = ["train", "photoz", "-c", TINY, "data.n_train=12000", "data.batch_size=32", "trainer.max_epochs=3"]
    full = tmp_path / "full"
    full.mkdir()
    assert run_cli(args, full).returncode == 0
    (expected,) = metrics_of(full)

    root = tmp_path / "killed"
    root.mkdir()
    env = {**os.environ, "COSMOBENCH_HOME": str(root), "WANDB_MODE": "disabled"}
    proc = subprocess.Popen([str(BIN / "cosmobench"), *args], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    last = None
    while time.time() < deadline and proc.poll() is None:
        found = list(root.glob("photoz/mdn/*/checkpoints/last.ckpt"))
        if found and found[0].stat().st_size > 0:
            last = found[0]
            size = last.stat().st_size
            time.sleep(0.05)
            if last.stat().st_size == size:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be interrupted"
    assert last is not None and not (last.parent.parent / "metrics.json").exists()
    assert db_rows(root) == []

    out = run_cli([*args, "resume=last"], root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert metrics_of(root) == [expected]  # same run dir, same final metrics
    (row,) = db_rows(root)
    assert row["status"] == "ok"


def test_ddp_two_processes_cpu(root):
    """DDP (gloo, 2 CPU processes) records one row; the kNN baseline is fitted on the
    gathered train split, so its metrics equal a single-process run exactly."""
    args = ["train", "photoz", "-m", "knn", "-c", TINY, "trainer.accelerator=cpu"]
    out = run_cli([*args, "trainer.devices=2", "trainer.strategy=ddp"], root, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = db_rows(root)
    assert row["status"] == "ok"
    single = root / "single"
    single.mkdir()
    assert run_cli(args, single).returncode == 0
    assert metrics_of(root, "knn") == metrics_of(single, "knn")


def test_nan_loss_fails_with_exit_1_and_failed_row(root):
    out = run_cli(["train", "photoz", "-c", TINY, "optim.lr=1e30"], root)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]  # the one-line reason closes stderr
    assert last.startswith("cosmobench: error: run ") and "loss became nan" in last.lower()
    (row,) = db_rows(root)
    assert row["status"] == "failed" and "NonFiniteLossError" in row["error"]
    (run_dir,) = run_dirs(root, "photoz", "mdn")
    assert (run_dir / "failed.txt").is_file() and not (run_dir / "metrics.json").exists()


@pytest.mark.parametrize("args,needle", [
    (["train", "photoz", "trainer.max_epochz=2"], "max_epochs"),
    (["train", "photoz", "-m", "nope"], "no model 'nope'"),
    (["train", "nope"], "unknown task"),
    (["train", "photoz", "-c", "missing.yaml"], "not found"),
    (["train", "photoz", "data.source=catalog"], "data.path"),
    (["train", "photoz", "data.source=catalog", "data.path=missing.csv"], "missing.csv"),
    (["train", "photoz", "data.source=hdf9"], "data.source='hdf9'"),
    (["train", "photoz", "resume=last"], "resume=last"),
    (["train", "photoz", "trainer.strategy=bogus"], "strategy"),
    (["predict", "photoz", "--checkpoint", "none.ckpt", "--input", "x.csv", "--output", "o.csv"], "not found"),
    (["predict", "photoz", "-m", "mdn", "--input", "x.csv", "--output", "o.csv"], "not found"),
    (["leaderboard", "--task", "nope"], "unknown task"),
    (["train"], "task"),
])
def test_bad_input_exit_2_nothing_written(args, needle, root):
    out = run_cli(args, root)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert needle in out.stderr and out.stderr.startswith("cosmobench: error:")
    assert list(root.iterdir()) == []  # no run dir, no results store


def test_missing_column_in_catalogue(root):
    cat = root.parent / "cat.csv"
    cat.write_text("mag_u,mag_g\n20,21\n")
    out = run_cli(["train", "photoz", "data.source=catalog", f"data.path={cat}"], root)
    assert out.returncode == 2 and "mag_r" in out.stderr
    assert list(root.iterdir()) == []


def test_print_config_writes_nothing(root):
    out = run_cli(["train", "photoz", "-m", "knn", "--print-config", "model.k=7"], root)
    assert out.returncode == 0 and "k: 7" in out.stdout and "name: knn" in out.stdout
    assert list(root.iterdir()) == []


def test_wandb_offline_run_is_written(root):
    out = run_cli(["train", "photoz", "-m", "knn", "-c", TINY, "logger=wandb"], root,
                  env={"WANDB_MODE": "offline"})
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = run_dirs(root, "photoz", "knn")
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert offline and list(offline[0].glob("*.wandb"))


def test_predict_output_formats_and_errors(root):
    assert run_cli(["train", "photoz", "-m", "knn", "-c", TINY], root).returncode == 0
    (run_dir,) = run_dirs(root, "photoz", "knn")
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    from cosmobench.datamodules.photoz import PhotoZDataModule
    from cosmobench import config as C
    cfg = C.load_yaml(run_dir / "config.yaml")
    dm = PhotoZDataModule(cfg["data"], seed=0)
    dm.setup()
    inp = dm.export("test", root / "in.csv")
    import h5py
    import numpy as np
    for ext in ("npz", "h5"):
        out = run_cli(["predict", "photoz", "--checkpoint", str(ckpt), "--input", str(inp),
                       "--output", str(root / f"o.{ext}")], root)
        assert out.returncode == 0, out.stderr[-2000:]
    npz = np.load(root / "o.npz")
    with h5py.File(root / "o.h5") as h5:
        assert sorted(h5) == sorted(npz.files)
        np.testing.assert_array_equal(h5["z_phot"][:], npz["z_phot"])
    assert {"z_phot", "z_lo", "z_hi", "weights_0", "means_0", "sigmas_0"} <= set(npz.files)
    assert np.all(npz["z_lo"] <= npz["z_phot"]) and np.all(npz["z_phot"] <= npz["z_hi"])
    bad = run_cli(["predict", "photoz", "--checkpoint", str(ckpt), "--input", str(inp), "--output", "o.txt"], root)
    assert bad.returncode == 2 and ".csv" in bad.stderr and ".fits" in bad.stderr
    wrong = run_cli(["predict", "morphology", "--checkpoint", str(ckpt), "--input", str(inp),
                     "--output", "o.csv"], root)
    assert wrong.returncode == 2 and "belongs to task 'photoz'" in wrong.stderr
    assert not (root / "o.txt").exists() and not (root / "o.csv").exists()
