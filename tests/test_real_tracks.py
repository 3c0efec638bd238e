"""The real/external tracks end to end on generated files with the real layouts, placed in a
private COSMOBENCH_DATA cache as after `cosmobench data fetch` (no network): photoz on Teddy and
Happy (Beck+2017 whitespace catalogues), massmapping on kappaTNG (360 x 360 FITS, cut into
tiles) and the COSMOS shear field (predict-only), and the `real` suite's missing-data error.

The cache check is by presence and registered size (no re-hash), so files the loaders never
read (Beck+2017's weights, the COSMOS noise maps, the power spectrum) are filled with zeros of
their registered size; the files the loaders read are generated with the publisher's layout.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cosmobench
from cosmobench import cli
from cosmobench import config as C
from cosmobench.datasets import get_dataset
from cosmobench.errors import InputError
from cosmobench.predict import predict
from cosmobench.sim.photometry import BECK2017_COLUMNS, write_beck2017_standin

FAST = ["logger=csv", "trainer.enable_progress_bar=false", "plots=false"]
ROOT = Path(__file__).parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COSMOBENCH_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def _fill(cache: Path, name: str, make) -> Path:
    """Every file of data set ``name`` in the cache: ``make(file_name, path)`` writes the ones
    it knows (returns True), the others get zeros of their registered size."""
    d = cache / name
    for f in get_dataset(name).files:
        p = d / f.name
        p.parent.mkdir(parents=True, exist_ok=True)
        if not make(f.name, p):
            p.write_bytes(bytes(f.size))
        assert f.size is None or p.stat().st_size == f.size, f.name
    return d


def _beck(sizes):
    def make(name, path):
        if name in ("columns.txt",) or name.startswith("weights"):
            return False
        s = name.split("_")[1][0]  # teddyT_A.cat / happyT_B -> A / B
        write_beck2017_standin(path, sizes[s], seed=ord(s), header=s == "A")
        return True
    return make


# --------------------------------------------------------------------------- photoz


def test_text_catalogue_reader_layouts(tmp_path):
    from cosmobench.datamodules.photoz import read_text_catalog

    body = "1237645876861272064 19.6 18.4 17.4 16.9 16.4 0.02 0.006 0.002 0.003 0.005 0.2008 0.00006\n" \
           "1237645876861272065 18.3 17.5 16.8 16.4 16.1 0.007 0.003 0.001 0.002 0.004 0.1212 0.00013\n"
    names = list(BECK2017_COLUMNS)
    for i, head in enumerate(("", "#" + " ".join(names) + "\n", " ".join(names) + "\n", "# a comment\n")):
        p = tmp_path / f"cat{i}.cat"
        p.write_text(head + body)
        got = read_text_catalog(p, names, ["u", "zErr", "redshift"])
        assert got["u"].tolist() == [19.6, 18.3] and got["redshift"].tolist() == [0.2008, 0.1212], head
    p = tmp_path / "headed.txt"
    p.write_text("#" + " ".join(names) + "\n" + body)
    assert read_text_catalog(p, None, ["iErr"])["iErr"].tolist() == [0.003, 0.002]  # header from the file
    with pytest.raises(InputError, match=r"'mag_u' not found .*\(data.text_columns names them\)"):
        read_text_catalog(p, names, ["mag_u"])


def test_teddy_trains_tests_on_d_and_predicts(cache, root, tmp_path):
    d = _fill(cache, "teddy", _beck({"A": 900, "B": 200, "C": 150, "D": 120}))
    cfg = C.resolve("photoz", "knn", overrides=["data.dataset=teddy"])
    assert cfg["data"]["path"] == str(d / "teddyT_A.cat") and cfg["data"]["test_path"] == str(d / "teddyT_B.cat")
    assert cfg["data"]["text_columns"] == list(BECK2017_COLUMNS) and cfg["data"]["z_column"] == "redshift"
    r = cosmobench.train("photoz", "knn", [*FAST, "data.dataset=teddy", "data.subset=300", "data.val_fraction=0.2"],
                         root=root)
    assert r.status == "ok" and r.metrics["sigma_nmad"] < 0.05  # SDSS-like photometry: a good kNN
    ckpt = r.run_dir / "checkpoints" / "best.ckpt"
    t = cosmobench.test("photoz", ckpt, overrides=[*FAST, f"data.test_path={d / 'teddyT_D.cat'}"], root=root)
    assert t.status == "ok" and t.metrics["sigma_nmad"] != r.metrics["sigma_nmad"]  # another test set
    out = predict("photoz", ckpt, d / "teddyT_C.cat", tmp_path / "c.csv")
    from cosmobench.io import read_table
    z = read_table(out, ["z_phot"])["z_phot"]
    assert len(z) == 150 and np.isfinite(z).all()


def test_happy_files_without_suffix(cache, root):
    d = _fill(cache, "happy", _beck({"A": 500, "B": 150, "C": 10, "D": 10}))
    assert (d / "happyT_A").is_file()
    r = cosmobench.train("photoz", "knn", [*FAST, "data.dataset=happy"], root=root)
    assert r.status == "ok" and r.metrics["outlier_frac"] < 0.2


# --------------------------------------------------------------------------- massmapping


def _fits(path, a):
    from astropy.io import fits
    fits.PrimaryHDU(np.ascontiguousarray(a)).writeto(path)


def _field(seed=0, n=360):
    from cosmobench.sim.cosmology import ks_forward
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(n)
    kk = np.hypot(*np.meshgrid(k, k))
    kappa = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * np.exp(-(kk / 0.03) ** 2)).real
    kappa *= 0.02 / kappa.std()
    g1, g2 = ks_forward(kappa)
    mask = (rng.random((n // 20, n // 20)) > 0.3).repeat(20, 0).repeat(20, 1).astype(np.float32)
    e = np.stack([g1, g2], -1) + 0.02 * rng.standard_normal((n, n, 2))
    return kappa.astype(np.float32), (e * mask[..., None]).astype(np.float32), mask


def test_kappatng_tiles_train_test_and_predict_the_whole_field(cache, root, tmp_path):
    kappa, e, mask = _field()

    def make(name, path):
        arrays = {"ktng_cosmos_e360.fits": e, "ktng_cosmos_kappa360.fits": kappa,
                  "cosmos_full_mask_0.29arcmin360.fits": mask}
        if name in arrays:
            _fits(path, arrays[name])
            return True
        np.save(path, np.zeros((2, 50)))
        return True
    _fill(cache, "kappatng-cosmos", make)
    layer = C.load_yaml(ROOT / "experiments" / "massmapping" / "external.yaml")
    assert layer["data"]["dataset"] == "kappatng-cosmos"
    r = cosmobench.train("massmapping", "ks", [*FAST, "data.dataset=kappatng-cosmos", "data.val_fraction=0.12",
                                               "data.test_fraction=0.34"], root=root)
    assert r.status == "ok" and r.metrics["pearson_r"] > 0.5  # low noise: KS recovers the field
    from cosmobench.datamodules.massmapping import MassMappingDataModule
    dm = MassMappingDataModule(C.resolve("massmapping", "ks", overrides=["data.dataset=kappatng-cosmos",
                                                                         "data.test_fraction=0.34"])["data"])
    dm.setup()
    assert {s: len(ds) for s, ds in dm.datasets.items()} == {"train": 5, "val": 1, "test": 3}
    assert tuple(dm.datasets["test"][0]["gamma"].shape) == (2, 120, 120)
    shear = cache / "kappatng-cosmos" / "ktng_cosmos_e360.fits"  # the whole field, in the file's own layout
    out = predict("massmapping", r.run_dir / "checkpoints" / "best.ckpt", shear, tmp_path / "kappa.npy")
    assert np.load(out).shape[-2:] == (360, 360)


def test_cosmos_shear_predicts_from_the_stacked_components(cache, root, tmp_path):
    kappa, e, mask = _field(seed=1)
    _fill(cache, "kappatng-cosmos", lambda name, path: (_fits(path, {"ktng_cosmos_e360.fits": e,
                                                                     "ktng_cosmos_kappa360.fits": kappa}.get(name, mask))
                                                        if name.endswith(".fits") else np.save(path, np.zeros((2, 50))))
                                                       or True)
    comps = {"cosmos_full_e1_0.29arcmin360.fits": e[..., 0], "cosmos_full_e2_0.29arcmin360.fits": e[..., 1],
             "cosmos_full_mask_0.29arcmin360.fits": mask}
    d = _fill(cache, "cosmos-shear", lambda name, path: name in comps and (_fits(path, comps[name]) or True))
    r = cosmobench.train("massmapping", "ks", [*FAST, "data.dataset=kappatng-cosmos"], root=root)
    assert r.status == "ok"
    from astropy.io import fits
    stacked = tmp_path / "cosmos_shear.npy"  # the conversion documented in the entry's notes
    np.save(stacked, np.stack([fits.getdata(d / f"cosmos_full_e{i}_0.29arcmin360.fits") for i in (1, 2)], -1))
    out = predict("massmapping", r.run_dir / "checkpoints" / "best.ckpt", stacked, tmp_path / "k.npy",
                             overrides=["data.dataset=cosmos-shear"])
    k = np.load(out)
    assert k.shape[-2:] == (360, 360) and np.isfinite(k).all()
    with pytest.raises(InputError, match="needs data.path"):  # predict-only: no shear/convergence pair to train on
        cosmobench.train("massmapping", "ks", [*FAST, "data.dataset=cosmos-shear"], root=root)


# --------------------------------------------------------------------------- the real suite


def test_real_suite_needs_its_data_sets_cached(cache, tmp_path, capsys):
    suite = ROOT / "experiments" / "suites" / "real.yaml"
    code = cli.main(["bench", str(suite), "--root", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "run `cosmobench data fetch teddy`" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
    from cosmobench.bench.suites import load_suite
    _, body = load_suite(suite)
    for task, entry in body["tasks"].items():  # every enabled track's config layer exists
        assert (ROOT / "experiments" / entry["config"]).is_file(), task
