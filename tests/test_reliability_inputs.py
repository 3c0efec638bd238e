"""Issue 21: bad input of the newer tasks, predict's side files and suites, rejected at its
root (exit 2, one line, nothing written) -- one section per class of the issue. Hostile
values are tried as a user or a suite file would give them."""
from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import BIN, run_cli
from cosmobench import cli
from cosmobench.errors import ConfigError, InputError

# run with the working directory in a marker folder: an injected command leaves a file there
HOSTILE = ["'; touch p1; '", "$(touch p2)", "`touch p3`", "a\ntouch p4\n", "x; touch p5",
           '"; touch p6; "', "$IFS$(touch$IFS p7)", "--root=/tmp\\\n$(touch p8)"]


def run_main(args, root, capsys, monkeypatch):
    monkeypatch.setenv("COSMOBENCH_HOME", str(root))
    monkeypatch.chdir(root)
    code = cli.main(args)
    return code, capsys.readouterr().err


def one_line_exit_2(code, err, needle=""):
    assert code == 2, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("cosmobench: error: "), err
    assert needle in lines[0], lines[0]


# --- 1. nothing of a suite reaches the generated SLURM script as code ---------------------
def _hostile_suite(tmp_path, marker):
    import yaml
    values = list(HOSTILE)
    layer = tmp_path / "x;$(touch q1)`touch q2`.yaml"
    layer.write_text("trainer:\n  max_epochs: 1\n")
    body = {"seeds": 1, "overrides": ["logger=none", "plots=false", "data.source=galaxy10",
                                      "data.path=/nonexistent/$(touch p9).h5"],
            "tasks": {"morphology": {"models": ["cnn"], "config": layer.name, "grid": {"data.image_key": values}}}}
    suite = tmp_path / "s'$(touch q3);`x`.yaml"
    suite.write_text(yaml.safe_dump(body))
    return suite, values


def test_slurm_script_holds_no_suite_value_and_runs_nothing_injected(tmp_path):
    marker = tmp_path / "marker"
    marker.mkdir()
    root = tmp_path / "runs"
    root.mkdir()
    suite, values = _hostile_suite(tmp_path, marker)
    out = run_cli(["bench", str(suite), "--launcher", "slurm", "--out", str(tmp_path / "slurm")], root)
    assert out.returncode == 0, out.stderr
    script = tmp_path / "slurm" / "bench.sbatch"
    text = script.read_text()
    for v in values:  # no grid value, config layer or suite name appears in the script
        assert v not in text
    for frag in ("$(touch", "`touch", "; touch", "\ntouch", "$IFS"):  # sanitized names keep letters only
        assert frag not in text
    assert "#SBATCH --array=0-7" in text
    manifest = json.loads((tmp_path / "slurm" / "manifest.json").read_text())
    assert [j["grid"]["data.image_key"] for j in manifest["jobs"]] == values

    # 1) the script under a fake python that records its argv: every array index runs the same
    # fixed command, whatever the manifest holds
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    rec = tmp_path / "argv.jsonl"
    fake = fake_bin / "python"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"open({str(rec)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    sandboxed = tmp_path / "sandboxed.sbatch"
    sandboxed.write_text(text.replace(shlex.quote(sys.executable), str(fake)))
    for i in range(len(values)):
        proc = subprocess.run(["bash", str(sandboxed)], env={"PATH": f"{fake_bin}:/usr/bin:/bin",
                              "SLURM_ARRAY_TASK_ID": str(i)}, capture_output=True, text=True, cwd=marker)
        assert proc.returncode == 0, proc.stderr
    calls = [json.loads(ln) for ln in rec.read_text().splitlines()]
    man = str((tmp_path / "slurm" / "manifest.json").resolve())
    assert calls == [["-m", "cosmobench.bench.worker", "--manifest", man, "--index", str(i)]
                     for i in range(len(values))]
    # a hostile array index is refused by the worker, not interpreted by the shell
    assert list(marker.iterdir()) == []

    # 2) the real script, two jobs: the hostile value reaches cosmobench as data (the job fails
    # on the missing file, exit 2) and no injected command ran
    env = {**os.environ, "WANDB_MODE": "disabled"}
    for i in (0, 3):
        proc = subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": str(i)},
                              capture_output=True, text=True, timeout=300, cwd=marker)
        assert proc.returncode == 2, proc.stderr
        assert "nonexistent" in proc.stderr
        assert shlex.join(["train", "morphology"]) in proc.stdout
    bad = subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": "1;touch p0"},
                         capture_output=True, text=True, cwd=marker)
    assert bad.returncode == 2 and "not a job" in bad.stderr
    assert list(marker.iterdir()) == [], "an injected command ran"
    assert not [p for p in tmp_path.rglob("*") if p.name in {f"p{i}" for i in range(10)} | {"q1", "q2", "q3"}]


@pytest.mark.parametrize("args,needle", [
    (["--sbatch=--time=1\n#SBATCH --wrap=touch_x"], "--sbatch"),
    (["--sbatch=--comment=$(touch x)"], "--sbatch"),
    (["--sbatch=--x y"], "--sbatch"),
    (["--out", "OUT/a b\nc"], "--out"),
    (["--out", "OUT/$(touch x)"], "--out"),
])
def test_slurm_unsafe_options_and_paths_refused_before_writing(tmp_path, args, needle):
    import yaml
    root = tmp_path / "runs"
    root.mkdir()
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"seeds": 1, "overrides": ["logger=none"],
                                     "tasks": {"photoz": {"models": ["knn"]}}}))
    args = [a.replace("OUT", str(tmp_path)) for a in args]
    out = run_cli(["bench", str(suite), "--launcher", "slurm", *args], root)
    one_line_exit_2(out.returncode, out.stderr, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "s.yaml"]
    assert list(root.iterdir()) == []


# --- 3. malformed files: one InputError line from the shared readers, no third-party output ---
def _malformed_files(d: Path) -> dict[str, Path]:
    import h5py
    from astropy.io import fits
    d.mkdir(exist_ok=True)
    files = {}

    def put(name, write):
        p = d / name
        write(p)
        files[name] = p

    put("empty.npy", lambda p: p.write_bytes(b""))
    put("empty.npz", lambda p: p.write_bytes(b""))
    put("notzip.npz", lambda p: p.write_bytes(b"PK not really a zip archive"))
    good = d / "_good.npz"
    np.savez(good, images=np.zeros((4, 1, 8, 8), np.float32))
    put("trunc.npz", lambda p: p.write_bytes(good.read_bytes()[:200]))
    put("strings.npy", lambda p: np.save(p, np.array(["a", "b"])))
    put("complex.npy", lambda p: np.save(p, np.zeros((4, 1, 8, 8), np.complex64)))
    put("objects.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True))
    put("noimages.npy", lambda p: np.save(p, np.zeros((0, 1, 8, 8), np.float32)))
    put("scalar.npy", lambda p: np.save(p, np.float32(3)))

    def group(p):
        with h5py.File(p, "w") as f:
            f.create_group("images").create_dataset("x", data=np.zeros(3))
    put("group.h5", group)

    def scalar(p):
        with h5py.File(p, "w") as f:
            f.create_dataset("images", data=3.0)
    put("scalar.h5", scalar)

    def strings(p):
        with h5py.File(p, "w") as f:
            f.create_dataset("images", data=np.array([b"a", b"b"]))
    put("strings.h5", strings)
    put("trunc.h5", lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100))
    goodf = d / "_good.fits"
    fits.PrimaryHDU(np.zeros((4, 8, 8), np.float32)).writeto(goodf)
    put("trunc.fits", lambda p: p.write_bytes(goodf.read_bytes()[:3000]))
    put("junk.fits", lambda p: p.write_bytes(b"SIMPLE  =                    T" + b" " * 50))
    return files


def test_malformed_image_files_are_one_input_error(tmp_path):
    from cosmobench.images import read_image_file, read_image_stack
    for name, p in _malformed_files(tmp_path / "bad").items():
        with pytest.raises(InputError) as exc:
            read_image_stack(p)
        assert str(p) in str(exc.value) and "\n" not in str(exc.value), name
        if name.endswith((".npy", ".fits")):
            with pytest.raises(InputError):
                read_image_file(p, 1)


# a CLI call costs ~15 CPU-s: two files by default, the rest with `make test-slow`
@pytest.mark.parametrize("name", ["trunc.fits", "group.h5", *(pytest.param(n, marks=pytest.mark.slow) for n in (
    "empty.npy", "trunc.npz", "scalar.h5", "strings.npy", "complex.npy", "junk.fits"))])
def test_malformed_stack_through_the_cli_is_one_line(tmp_path, name):
    root = tmp_path / "runs"
    root.mkdir()
    p = _malformed_files(tmp_path / "bad")[name]
    out = run_cli(["train", "lensfinding", "logger=none", "data.source=stack", f"data.path={p}",
                   f"data.label_path={tmp_path / 'labels.csv'}"], root)
    one_line_exit_2(out.returncode, out.stderr, str(p))
    assert list(root.iterdir()) == []


def test_non_numeric_table_column_is_one_input_error(tmp_path):
    from cosmobench.io import read_table
    (tmp_path / "t.csv").write_text("a,b\n1,x\n2,\n3,nan\n")
    with pytest.raises(InputError, match=r"column 'b' is not numeric: row 0 holds 'x'"):
        read_table(tmp_path / "t.csv", ["a", "b"], numeric=True)
    (tmp_path / "u.csv").write_text("a,b\n1,\n2,nan\n")
    assert np.isnan(read_table(tmp_path / "u.csv", numeric=["b"])["b"]).all()


# --- 4. checkpoints carry task, model and data shape -------------------------------------
@pytest.fixture(scope="module")
def morph_run(tmp_path_factory):
    from conftest import HERE, run_dirs
    root = tmp_path_factory.mktemp("morph") / "runs"
    root.mkdir()
    out = run_cli(["train", "morphology", "-m", "cnn", "-c", str(HERE / "conf" / "morphology.yaml")], root)
    assert out.returncode == 0, out.stderr[-2000:]
    return root, run_dirs(root, "morphology", "cnn")[-1]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "results.sqlite" not in p.name)


def test_checkpoint_refused_by_another_task_even_outside_its_run_dir(morph_run, tmp_path):
    import shutil
    import torch
    root, run_dir = morph_run
    ckpt = tmp_path / "moved.ckpt"
    shutil.copy(run_dir / "checkpoints" / "best.ckpt", ckpt)
    meta = torch.load(ckpt, map_location="cpu", weights_only=True)["cosmobench"]
    assert meta == {"task": "morphology", "model": "cnn"}
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 24, 24), np.float32))
    before = _tree(root)
    for cmd in (["predict", "lensfinding", "--checkpoint", str(ckpt), "--input", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "o.csv")],
                ["test", "lensfinding", "--checkpoint", str(ckpt)],
                ["test", "lensfinding", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt")]):
        out = run_cli(cmd, root)
        one_line_exit_2(out.returncode, out.stderr, "belongs to task 'morphology'")
    assert _tree(root) == before and not (tmp_path / "o.csv").exists()


def test_checkpoint_refuses_other_bands_sizes_and_fixed_overrides(morph_run, tmp_path):
    root, run_dir = morph_run
    ckpt = str(run_dir / "checkpoints" / "best.ckpt")
    before = _tree(root)
    for over, needle in (["data.n_bands=1", "data.n_bands=3"], ["data.image_size=32", "data.image_size=24"],
                         ["model.channels=[4,8]", "fixed by the checkpoint"], ["optim.lr=0.5", "fixed by the checkpoint"]):
        out = run_cli(["test", "morphology", "--checkpoint", ckpt, over], root)
        one_line_exit_2(out.returncode, out.stderr, needle)
    np.save(tmp_path / "x1.npy", np.zeros((2, 1, 24, 24), np.float32))  # one band for a 3-band model
    out = run_cli(["predict", "morphology", "--checkpoint", ckpt, "--input", str(tmp_path / "x1.npy"),
                   "--output", str(tmp_path / "o.csv")], root)
    one_line_exit_2(out.returncode, out.stderr, "x1.npy")
    assert _tree(root) == before and not (tmp_path / "o.csv").exists()


def test_test_set_of_one_class_is_refused_before_a_run_dir(tmp_path, capsys, monkeypatch):
    from cosmobench.datamodules.lensfinding import LensFindingDataModule
    from cosmobench import config as C
    x = np.random.default_rng(0).normal(size=(40, 3, 64, 64)).astype(np.float32)
    np.savez(tmp_path / "train.npz", images=x, labels=np.arange(40) % 2)
    np.savez(tmp_path / "test.npz", images=x[:10], labels=np.ones(10, np.int64))
    cfg = C.resolve("lensfinding", "cnn", overrides=["data.source=stack", f"data.path={tmp_path / 'train.npz'}",
                                                      f"data.test_path={tmp_path / 'test.npz'}"])
    with pytest.raises(InputError, match="test split holds only class"):
        LensFindingDataModule(cfg["data"], seed=0).setup()


# --- 5. silent wrong results of the mass-mapping readers ----------------------------------
def test_massmapping_tiny_maps_empty_masks_complex_and_orderings(tmp_path):
    import healpy as hp
    from astropy.io import fits
    from cosmobench.datamodules.massmapping import MassMappingDataModule, read_flat_shear, read_healpix_shear
    for n in (1, 2, 7):
        np.save(tmp_path / f"s{n}.npy", np.zeros((2, n, n)))
        with pytest.raises(InputError, match="too small"):
            read_flat_shear(tmp_path / f"s{n}.npy")
    np.save(tmp_path / "c.npy", np.zeros((2, 16, 16), np.complex128))
    with pytest.raises(InputError, match="complex"):
        read_flat_shear(tmp_path / "c.npy")
    np.save(tmp_path / "g.npy", np.zeros((3, 2, 16, 16)))
    mask = np.ones((3, 16, 16))
    mask[1] = 0
    np.save(tmp_path / "m.npy", mask)
    from cosmobench import config as C
    cfg = C.resolve("massmapping", "ks", overrides=["data.source=flat", f"data.path={tmp_path / 'g.npy'}",
                                                     f"data.mask_path={tmp_path / 'm.npy'}"])
    with pytest.raises(InputError, match="map 1 has no observed pixel"):
        MassMappingDataModule(cfg["data"], seed=0).read_input(tmp_path / "g.npy")
    # HEALPix: the header's ORDERING decides; unknown or missing orderings are refused
    nside = 4
    g = np.random.default_rng(0).normal(size=(2, 12 * nside ** 2))
    hp.write_map(str(tmp_path / "nest.fits"), hp.reorder(g, r2n=True), nest=True, dtype=np.float64)
    got, _ = read_healpix_shear(tmp_path / "nest.fits")
    np.testing.assert_allclose(got, g)
    for value in ("XYZ", None):
        with fits.open(tmp_path / "nest.fits") as hdul:
            if value is None:
                del hdul[1].header["ORDERING"]
            else:
                hdul[1].header["ORDERING"] = value
            hdul.writeto(tmp_path / "bad.fits", overwrite=True)
        with pytest.raises(InputError, match="ORDERING"):
            read_healpix_shear(tmp_path / "bad.fits")
    hp.write_map(str(tmp_path / "empty_mask.fits"), [g[0], g[1], np.zeros_like(g[0])], dtype=np.float64)
    cfg = C.resolve("massmapping", "ks", overrides=["data.source=healpix"])
    with pytest.raises(InputError, match="no observed pixel"):
        MassMappingDataModule(cfg["data"], seed=0).read_input(tmp_path / "empty_mask.fits")


# --- 6. sizes without a bound: estimated before allocation -------------------------------
@pytest.mark.parametrize("task,over,needle", [
    ("morphology", ["data.image_size=100000"], "data.image_size=100000"),
    ("lensfinding", ["data.n_train=2000000000"], "data.image_size=64"),
    ("massmapping", ["data.map_size=200000"], "data.map_size=200000"),
    ("massmapping", ["data.box_factor=4000", "data.map_size=128"], "data.box_factor=4000"),
    ("photoz", ["data.n_train=5000000000"], "simulated galaxies"),
    ("morphology", ["data.batch_size=100000", "data.image_size=1024"], "data.batch_size=100000"),
])
def test_sizes_beyond_memory_exit_2_before_allocating(tmp_path, capsys, monkeypatch, task, over, needle):
    root = tmp_path / "runs"
    root.mkdir()
    code, err = run_main(["train", task, "logger=none", *over], root, capsys, monkeypatch)
    one_line_exit_2(code, err, needle)
    assert "of memory" in err and list(root.iterdir()) == []


# --- 7. a suite is validated whole before its first job ----------------------------------
@pytest.mark.parametrize("grid,needle", [
    ({"trainer.max_epochs": [1, 0]}, "max_epochs=0"),
    ({"data.n_train": [64, 9000000000]}, "of memory"),
    ({"data.source": ["sim", "catalog"]}, "needs data.path"),
    ({"data.n_val": [16, -1]}, "data.n_val"),
])
def test_suite_with_a_later_invalid_grid_value_runs_nothing(tmp_path, capsys, monkeypatch, grid, needle):
    import yaml
    root = tmp_path / "runs"
    root.mkdir()
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"seeds": 1, "overrides": ["logger=none", "data.n_train=64", "data.n_val=16",
                                                              "data.n_test=16", "trainer.max_epochs=1"],
                                     "tasks": {"photoz": {"models": ["knn"], "grid": grid}}}))
    code, err = run_main(["bench", str(suite)], root, capsys, monkeypatch)
    one_line_exit_2(code, err, needle)
    assert list(root.iterdir()) == []
