"""sbibm's published observations (data.reference_dir / data.dataset=sbibm-*): read as the
benchmark observations, their reference samples used by C2ST; the download path is
exercised against a local HTTP server serving generated files in sbibm's real layout
(num_observation_<k>/{observation.csv, true_parameters.csv,
reference_posterior_samples.csv.bz2}); no network."""
from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cosmobench.datasets import DataFile, Dataset, fetch, get_dataset, register_dataset, unregister_dataset
from cosmobench.datasets.download import sha256_file
from cosmobench.errors import InputError
from cosmobench.sim.sbi_problems import get_problem
from cosmobench.datamodules.sbi import SBIDataModule, reference_posterior

HERE = Path(__file__).parent
TINY = HERE / "conf" / "sbi.yaml"
N_OBS = 3


def write_sbibm_dir(root: Path, problem_name: str, n_obs: int = N_OBS, n_ref: int = 300, seed: int = 5) -> Path:
    """Generated observations in sbibm's layout (sbibm's column names, bz2 reference samples)."""
    p = get_problem(problem_name)
    rng = np.random.default_rng(seed)
    for k in range(n_obs):
        d = root / f"num_observation_{k + 1}"
        d.mkdir(parents=True)
        theta = p.sample_prior(1, rng)
        x = p.simulate(theta, rng)
        pd.DataFrame(theta, columns=p.param_names).to_csv(d / "true_parameters.csv", index=False)
        pd.DataFrame(x.reshape(1, -1), columns=p.data_names()).to_csv(d / "observation.csv", index=False)
        (d / "observation_seed.csv").write_text(f"observation_seed,num_observation\n{1000000 + k},{k + 1}\n")
        ref = p.reference_posterior(x[0], n_ref, seed=k)
        pd.DataFrame(ref, columns=p.param_names).to_csv(d / "reference_posterior_samples.csv.bz2", index=False,
                                                        compression="bz2")
    return root


def data_cfg(**kw):
    from cosmobench.config import resolve
    cfg = resolve("sbi", "npe", overrides=[f"data.{k}={v}" for k, v in kw.items()])
    return cfg["data"]


def test_reference_dir_gives_the_observations_and_reference_samples(tmp_path):
    ref_dir = write_sbibm_dir(tmp_path / "tm", "two_moons")
    dm = SBIDataModule(data_cfg(problem="two_moons", reference_dir=ref_dir, num_simulations=50,
                                num_observations=N_OBS, num_sbc=10), seed=0)
    dm.setup()
    test = dm.datasets["test"].arrays
    for k in range(N_OBS):
        d = ref_dir / f"num_observation_{k + 1}"
        np.testing.assert_allclose(test["theta"][k].numpy(), pd.read_csv(d / "true_parameters.csv").to_numpy()[0],
                                   rtol=1e-6)
        np.testing.assert_allclose(test["x"][k].numpy(), pd.read_csv(d / "observation.csv").to_numpy()[0], rtol=1e-6)
    plain = SBIDataModule(data_cfg(problem="two_moons", num_simulations=50, num_observations=N_OBS, num_sbc=10), 0)
    plain.setup()  # the SBC pairs after the observations are the simulated ones, unchanged
    np.testing.assert_array_equal(test["x"][N_OBS:].numpy(), plain.datasets["test"].arrays["x"][N_OBS:].numpy())
    assert not np.allclose(test["x"][:N_OBS].numpy(), plain.datasets["test"].arrays["x"][:N_OBS].numpy())
    info = dm.info()
    assert info["reference_dir"] == str(ref_dir)
    ref = reference_posterior(dm.problem, info["problem_cfg"], 0, 1, test["theta"][1].numpy(), test["x"][1].numpy(),
                              200, reference_dir=info["reference_dir"])
    file_rows = pd.read_csv(ref_dir / "num_observation_2" / "reference_posterior_samples.csv.bz2").to_numpy()
    np.testing.assert_array_equal(ref, file_rows[:200])
    with pytest.raises(InputError, match="fewer than eval.reference_samples=500"):
        reference_posterior(dm.problem, info["problem_cfg"], 0, 1, None, test["x"][1].numpy(), 500,
                            reference_dir=info["reference_dir"])


def test_reference_dir_bad_inputs(tmp_path):
    tm = write_sbibm_dir(tmp_path / "tm", "two_moons")
    with pytest.raises(InputError, match="num_observation_4/observation.csv is missing"):
        SBIDataModule(data_cfg(problem="two_moons", reference_dir=tm, num_observations=4, num_sbc=10), 0)
    with pytest.raises(InputError, match="not a directory"):
        SBIDataModule(data_cfg(problem="two_moons", reference_dir=tmp_path / "nope"), 0)
    gl = write_sbibm_dir(tmp_path / "gl", "gaussian_linear")    # another task's files
    dm = SBIDataModule(data_cfg(problem="two_moons", reference_dir=gl, num_simulations=50, num_observations=N_OBS,
                                num_sbc=10), 0)
    with pytest.raises(InputError, match="a file of another sbibm task"):
        dm.setup()
    (tm / "num_observation_2" / "observation.csv").write_text("data_1,data_2\n0.1,abc\n")
    dm = SBIDataModule(data_cfg(problem="two_moons", reference_dir=tm, num_simulations=50, num_observations=N_OBS,
                                num_sbc=10), 0)
    with pytest.raises(InputError, match="non-numeric"):
        dm.setup()
    (tm / "num_observation_3" / "reference_posterior_samples.csv.bz2").write_bytes(b"BZh9 truncated")
    with pytest.raises(InputError, match="not a readable CSV"):
        x3 = pd.read_csv(tm / "num_observation_3" / "observation.csv").to_numpy()[0]   # sbibm's observation 3
        reference_posterior(dm.problem, {"cache_dir": None}, 0, 2, None, x3, 10, reference_dir=str(tm))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def sbibm_served(tmp_path, monkeypatch):
    """A copy of the registered sbibm-two-moons entry whose files are generated ones served
    from a local HTTP server, fetched into a tmp cache."""
    served = write_sbibm_dir(tmp_path / "served", "two_moons", n_obs=10)
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("COSMOBENCH_DATA", str(tmp_path / "cache"))
    real = get_dataset("sbibm-two-moons")
    files = tuple(DataFile(f.name, (f"{url}/{f.name}",), sha256_file(served / f.name), (served / f.name).stat().st_size,
                           "sha256 computed from the generated fixture") for f in real.files)
    ds = register_dataset(Dataset(name="t-sbibm-two-moons", task="sbi", description="test", files=files,
                                  licence=real.licence, licence_url=real.licence_url, citation_key=real.citation_key,
                                  citation=real.citation, loader=dict(real.loader)), replace=True)
    fetch(ds.name, progress=False, say=lambda *a: None)
    yield served
    unregister_dataset(ds.name)
    httpd.shutdown()
    httpd.server_close()


def test_dataset_track_end_to_end(sbibm_served, tmp_path, monkeypatch, capfd):
    """data.dataset=<an sbibm entry> trains, and its C2ST is against the files' reference
    samples (a posterior equal to those samples would score 0.5; we check the observations
    and the reference that the metric saw)."""
    import cosmobench
    import cosmobench.tasks.sbi as T
    monkeypatch.setenv("WANDB_MODE", "disabled")
    seen = []
    orig = T.reference_posterior

    def spy(*a, **kw):
        out = orig(*a, **kw)
        seen.append((a[3], a[5], out))
        return out
    monkeypatch.setattr(T, "reference_posterior", spy)
    res = cosmobench.train("sbi", model="npe", config_file=TINY, root=tmp_path / "runs",
                           overrides=["data.dataset=t-sbibm-two-moons", "data.num_observations=2",
                                      "data.num_simulations=300"])
    assert 0.5 <= res.metrics["c2st"] <= 1.0
    err = capfd.readouterr().err                      # evaluation progress, one line per step
    assert "sbi evaluation: observation 1/2 done: c2st" in err and "sbi evaluation: observation 2/2 done" in err
    assert "sbi evaluation: SBC/TARP samples drawn" in err
    assert [k for k, _, _ in seen] == [0, 1]
    for k, x, ref in seen:
        d = sbibm_served / f"num_observation_{k + 1}"
        np.testing.assert_allclose(x, pd.read_csv(d / "observation.csv").to_numpy()[0], rtol=1e-6)
        np.testing.assert_array_equal(ref, pd.read_csv(d / "reference_posterior_samples.csv.bz2").to_numpy()[:200])
    run_dir = Path(res.run_dir)
    prov = json.loads((run_dir / "data.json").read_text())
    assert prov["dataset"] == "t-sbibm-two-moons" and "num_observation_1/observation.csv" in prov["files"]


def test_every_sbibm_dataset_has_its_problem():
    """Each registered sbibm-* data set names a problem that exists, whose observation file is
    among the data set's files (observation_distractors.csv / observation_raw.csv included)."""
    from cosmobench.datasets import DATASETS
    sets = [d for d in DATASETS.values() if d.name.startswith("sbibm-")]
    assert len(sets) == 8
    for ds in sets:
        p = get_problem(ds.loader["problem"])
        names = {f.name for f in ds.files}
        for k in range(1, 11):
            for name in (p.observation_file, "true_parameters.csv", "reference_posterior_samples.csv.bz2"):
                assert f"num_observation_{k}/{name}" in names
