"""``cosmobench test TASK --checkpoint CKPT [KEY=VALUE ...]`` (and ``cosmobench.test``): a
trained model scored on another datamodule (a real-data catalogue) records its own row;
``logger=tensorboard`` works; bad input exits 2 and writes nothing."""
import json
import math

import pytest

import cosmobench
from conftest import HERE, db_rows, run_cli, run_dirs
from cosmobench import cli
from cosmobench import config as C

TINY = str(HERE / "conf" / "photoz.yaml")


def run_main(args, root, capsys, monkeypatch):
    """``cosmobench ARGS`` in this process (the subprocess path is tested once below)."""
    monkeypatch.setenv("COSMOBENCH_HOME", str(root))
    monkeypatch.chdir(root)
    code = cli.main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny kNN photo-z run (logged with TensorBoard) and a catalogue simulated with another seed."""
    root = tmp_path_factory.mktemp("runs")
    out = run_cli(["train", "photoz", "-m", "knn", "-c", TINY, "logger=tensorboard"], root)
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = run_dirs(root, "photoz", "knn")
    from cosmobench.datamodules.photoz import PhotoZDataModule
    cfg = C.resolve("photoz", "knn", config_file=TINY, overrides=["seed=7"])
    dm = PhotoZDataModule(cfg["data"], seed=7)
    dm.setup()
    cat = dm.export("test", root.parent / "catalogue.csv")
    return root, run_dir, cat


def test_tensorboard_logger_writes_events(trained):
    _, run_dir, _ = trained
    assert list(run_dir.glob("tensorboard/**/events.out.tfevents.*"))
    assert C.load_yaml(run_dir / "config.yaml")["logger"] == "tensorboard"


def test_scores_checkpoint_on_a_catalogue_and_records_a_row(trained):
    root, run_dir, cat = trained
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    n_before = len(db_rows(root))
    out = run_cli(["test", "photoz", "--checkpoint", str(ckpt), "data.source=catalog", f"data.path={cat}",
                   "data.test_fraction=0.5", "logger=none"], root)
    assert out.returncode == 0, out.stderr[-3000:]
    test_dirs = [d for d in run_dirs(root, "photoz", "knn") if d.name.endswith("-test")]
    assert len(test_dirs) >= 1
    tdir = max(test_dirs, key=lambda d: d.stat().st_mtime)
    assert str(tdir) in out.stdout
    assert (tdir / "checkpoint.txt").read_text().strip() == str(ckpt.resolve())
    saved = C.load_yaml(tdir / "config.yaml")
    assert saved["data"]["source"] == "catalog" and saved["data"]["path"] == str(cat)
    metrics = json.loads((tdir / "metrics.json").read_text())
    assert metrics and all(math.isfinite(v) for v in metrics.values())
    rows = db_rows(root)
    assert len(rows) == n_before + 1
    train_row = next(r for r in rows if r["run_id"] == run_dir.name)
    test_row = next(r for r in rows if r["run_id"] == tdir.name)
    assert test_row["status"] == "ok" and test_row["metrics"] == metrics
    assert test_row["config_hash"] != train_row["config_hash"]          # another dataset: its own entry
    assert test_row["dataset_fingerprint"] != train_row["dataset_fingerprint"]


def test_same_data_reproduces_the_training_runs_metrics(trained):
    """Scoring the checkpoint on the run's own (simulated) test split gives its metrics.json."""
    root, run_dir, _ = trained
    res = cosmobench.test("photoz", run_dir / "checkpoints" / "best.ckpt", overrides=["logger=none"], root=root)
    assert res.run_dir.name.endswith("-test") and res.model == "knn"
    assert res.metrics == json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("extra,needle", [
    (["-m", "mdn"], "holds model 'knn', not 'mdn'"),
    (["data.source=catalog"], "data.path"),
    (["data.source=catalog", "data.path=missing.csv"], "missing.csv"),
    (["model.k=0"], "model.k=0"),
    (["trainer.max_epochz=1"], "did you mean"),
])
def test_bad_input_exit_2_nothing_written(trained, extra, needle, capsys, monkeypatch):
    root, run_dir, _ = trained
    before = sorted(p for p in root.rglob("*"))
    rows = len(db_rows(root))
    code, _, err = run_main(["test", "photoz", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt"), *extra],
                            root, capsys, monkeypatch)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err
    assert sorted(p for p in root.rglob("*")) == before and len(db_rows(root)) == rows


def test_bad_checkpoints(trained, tmp_path, capsys, monkeypatch):
    root, run_dir, _ = trained
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint\n" * 10)
    for args, needle in [
        (["test", "morphology", "--checkpoint", str(ckpt)], "belongs to task 'photoz'"),
        (["test", "photoz", "--checkpoint", str(tmp_path / "none.ckpt")], "not found"),
        (["test", "photoz", "--checkpoint", str(garbage)], "garbage.ckpt"),
        (["test", "photoz", "--checkpoint", str(garbage), "-m", "knn"], "garbage.ckpt"),
    ]:
        rows = len(db_rows(root))
        code, _, err = run_main(args, root, capsys, monkeypatch)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and needle in err, err
        assert len(db_rows(root)) == rows


def test_print_config_shows_the_runs_config(trained, capsys, monkeypatch):
    root, run_dir, _ = trained
    code, out, err = run_main(["test", "photoz", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt"),
                               "--print-config", "data.n_test=33"], root, capsys, monkeypatch)
    assert code == 0, err
    assert "name: knn" in out and "n_test: 33" in out and "n_train: 600" in out


def test_predict_print_config_uses_the_checkpoints_run(trained, capsys, monkeypatch):
    root, run_dir, cat = trained
    code, out, err = run_main(["predict", "photoz", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt"),
                               "--input", str(cat), "--output", "o.csv", "--print-config"], root, capsys, monkeypatch)
    assert code == 0, err
    assert "name: knn" in out and "n_train: 600" in out  # the run's tiny config, not the task defaults
    assert not (root / "o.csv").exists()
