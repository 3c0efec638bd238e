"""Simulations for simulation-based inference: (theta, x) pairs from a problem's prior and
simulator (:mod:`cosmobench.sim.sbi_problems`), test observations and their reference
posteriors.

Splits (items are dicts of tensors ``theta`` (d,), ``x`` (*x_shape), ``idx``):

* ``train`` + ``val``: the simulation budget ``data.num_simulations`` (sbibm's 10^3/10^4/10^5),
  of which ``round(data.val_fraction * num_simulations)`` (>= 1) are held out for validation
  and early stopping, as ``sbi``'s own trainer does.
* ``test``: ``data.num_sbc`` fresh prior-predictive pairs. The first ``data.num_observations``
  are the benchmark observations (C2ST against the reference posterior, nltp, posterior
  width, timing); all ``num_sbc`` enter SBC and TARP.

Randomness: split s is simulated in chunks of :data:`CHUNK` pairs, chunk c from
``sample_rng(seed, s, c)`` and always simulated whole, so pair i depends only on
(seed, split, i) — not on the budget.

Observations and their reference posteriors (:func:`reference_posterior`) are cached in
sbibm's layout under ``data.cache_dir`` (null: ``$COSMOBENCH_CACHE`` or ``~/.cache/cosmobench``)::

    sbi/<problem>/<key>/num_observation_<k>/observation.csv               data_1, ..., data_D (one row)
                                          /true_parameters.csv           parameter names (one row)
                                          /reference_posterior_samples.csv.bz2

(map problems write ``observation.npy``). ``<key>`` hashes the problem's config, the seed
and the number of reference samples. The reference posterior of observation k is drawn
with seed ``[seed, k]`` (MCMC on the true likelihood, or the problem's analytic sampler).

sbibm's published observations (``data.reference_dir``, set by ``data.dataset=sbibm-*``): a
directory in the same layout (sbibm's ``tasks/<task>/files/``), k = 1 .. 10. The first
``data.num_observations`` test pairs are then sbibm's observations and true parameters
(:func:`read_sbibm_observation`; the remaining SBC pairs are still simulated), and C2ST is
computed against the first ``eval.reference_samples`` rows of sbibm's 10,000 reference
posterior samples of each (:func:`reference_posterior`), as in sbibm's published table.

``predict`` input: one or more observations as a CSV/ECSV/FITS table with columns
``data_1 ... data_D`` (sbibm's ``observation.csv``; a table with exactly D columns is read in
column order), a ``.npy`` vector (D,) or array (N, D); for map problems a ``.npy``/FITS map
(H, W) or stack (N, H, W) (also ``.npz``/HDF5 stacks).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from cosmobench.datamodule import ArrayDataset, BaseDataModule, DataSettings, sample_rng
from cosmobench.errors import ConfigError, InputError
from cosmobench.io import atomic_path
from cosmobench.settings import setting
from cosmobench.sim.sbi_problems import CosmoSurvey, SBIProblem, get_problem

log = logging.getLogger(__name__)

CHUNK = 500  #: simulations per independent random chunk


@dataclass
class SBIData(CosmoSurvey, DataSettings):
    """The ``data`` node of sbi: the problem, its survey (:class:`CosmoSurvey`), the
    simulation budget and the test pairs (module docstring)."""

    source: str = setting("sim", ["sim"], help="the problem's simulator (sbi has no real-data source)")
    problem: str = setting("cl_gaussian", "str",
                           help="inference problem (cosmobench.sim.sbi_problems: built-in or registered)")
    num_simulations: int = setting(10000, "int >= 3", help="simulation budget: training + validation pairs")
    val_fraction: float = setting(0.1, "0 < float < 1", help="fraction of the budget held out for validation")
    num_sbc: int = setting(200, "int >= 2", help="test pairs: SBC and TARP run on all of them")
    num_observations: int = setting(10, "positive int",
                                    help="benchmark observations (C2ST, nltp, width): the first test pairs")
    reference_dir: str | None = setting(None, "str or null",
                                        help="sbibm-layout directory of published observations "
                                             "(num_observation_<k>/observation.csv, true_parameters.csv, "
                                             "reference_posterior_samples.csv.bz2; set by data.dataset=sbibm-*): "
                                             "the benchmark observations and C2ST's reference samples")
    cache_dir: str | None = setting(None, "str or null",
                                    help="cache of reference posteriors and C_ell grids "
                                         "(null: $COSMOBENCH_CACHE or ~/.cache/cosmobench)")


#: the ``data`` keys that define a problem (its factory's config; the reference-posterior cache key)
PROBLEM_KEYS = ("problem", "cache_dir", *(f.name for f in dataclasses.fields(CosmoSurvey)))


def cache_root(cache_dir: str | None) -> Path:
    return Path(cache_dir or os.environ.get("COSMOBENCH_CACHE") or Path.home() / ".cache" / "cosmobench")


def problem_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``data`` keys that define the problem (json-able; stored in ``info``)."""
    return {k: cfg[k] for k in PROBLEM_KEYS}


def reference_posterior(problem: SBIProblem, problem_cfg: Mapping[str, Any], seed: int, k: int,
                        theta: np.ndarray, x: np.ndarray, n: int, reference_dir: str | None = None) -> np.ndarray | None:
    """``n`` reference posterior samples (n, d) of benchmark observation ``k`` (0-based; true
    parameters ``theta``, data ``x``) of a run with data ``seed``, or None if the problem has
    none. With ``reference_dir`` (sbibm's files): the first ``n`` of its samples. Otherwise
    drawn with seed ``[seed, k]``, computed once and cached (sbibm layout, module docstring).
    A reference belongs to its observation: sbibm's is used only when ``x`` is sbibm's
    observation ``k``, and the cache key holds ``x`` (a validation observation ``k`` is not the
    test observation ``k``: the validation C2ST of tuning was scored against test references)."""
    if reference_dir and np.allclose(read_sbibm_observation(problem, reference_dir, k)[1],
                                     np.asarray(x, np.float64).reshape(-1), rtol=1e-6, atol=0.0):
        return read_sbibm_reference(problem, reference_dir, k, n)
    x_hash = hashlib.sha256(np.ascontiguousarray(x, np.float32).tobytes()).hexdigest()[:16]
    key = json.dumps({"problem": problem.name, "cfg": dict(problem_cfg), "seed": int(seed), "n_ref": int(n),
                      "chunk": CHUNK, "x": x_hash, "reference_version": problem.reference_version}, sort_keys=True, default=str)
    d = (cache_root(problem_cfg["cache_dir"]) / "sbi" / problem.name / hashlib.sha256(key.encode()).hexdigest()[:16]
         / f"num_observation_{k + 1}")
    ref_path = d / "reference_posterior_samples.csv.bz2"
    if ref_path.is_file():
        import pandas as pd
        return pd.read_csv(ref_path).to_numpy(np.float64)
    ref_seed = int(np.random.SeedSequence([int(seed), k]).generate_state(1)[0])
    samples = problem.reference_posterior(x, int(n), seed=ref_seed)
    if samples is None:
        return None
    samples = np.asarray(samples, np.float64)
    _write_observation(problem, d, theta, x, samples)
    return samples


def sbibm_files(problem: SBIProblem) -> tuple[str, ...]:
    """The files of one sbibm observation directory (the observation's name is the problem's:
    ``observation_distractors.csv`` / ``observation_raw.csv`` for slcp_distractors /
    bernoulli_glm_raw)."""
    return (problem.observation_file, "true_parameters.csv", "reference_posterior_samples.csv.bz2")


def _sbibm_dir(reference_dir: str | Path, k: int) -> Path:
    return Path(reference_dir).expanduser() / f"num_observation_{k + 1}"


def _read_csv(path: Path, names: list[str], what: str) -> np.ndarray:
    """A numeric CSV with header ``names`` (sbibm's column names) as (rows, len(names)) float64."""
    import pandas as pd
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, EOFError) as exc:  # pandas' parser errors are ValueErrors; bz2 raises OSError/EOFError
        raise InputError(f"{path}: not a readable CSV ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if list(table.columns) != names:
        cols = ", ".join(map(str, list(table.columns)[:6]))
        raise InputError(f"{path}: expected the {what} columns {names[0]} ... {names[-1]} ({len(names)}), found "
                         f"{len(table.columns)}: {cols}: a file of another sbibm task?")
    try:
        a = table.to_numpy(np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: non-numeric values in the {what} columns") from None
    if len(a) == 0 or not np.all(np.isfinite(a)):
        raise InputError(f"{path}: {'no rows' if len(a) == 0 else 'non-finite values'} in the {what} columns")
    return a


def check_sbibm_dir(problem: SBIProblem, reference_dir: str | Path, n_obs: int) -> None:
    """Refuse a ``data.reference_dir`` without the files of observations 1 .. ``n_obs`` (one
    InputError line naming the first missing file)."""
    root = Path(reference_dir).expanduser()
    if not root.is_dir():
        raise InputError(f"data.reference_dir={str(reference_dir)!r} is not a directory")
    if problem.is_map:
        raise ConfigError(f"data.reference_dir: problem {problem.name!r} has map data; sbibm's observations are "
                          f"vectors (use an sbibm problem such as two_moons)")
    for k in range(n_obs):
        for name in sbibm_files(problem):
            if not (_sbibm_dir(root, k) / name).is_file():
                have = len([d for d in root.glob("num_observation_*") if d.is_dir()])
                raise InputError(f"data.reference_dir {root}: {_sbibm_dir(root, k).name}/{name} is missing "
                                 f"(data.num_observations={n_obs}; the directory holds {have} observations)")


def read_sbibm_observation(problem: SBIProblem, reference_dir: str | Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    """sbibm's true parameters (d,) and observation (D,) of observation ``k`` (0-based)."""
    d = _sbibm_dir(reference_dir, k)
    theta = _read_csv(d / "true_parameters.csv", list(problem.param_names), "parameter")
    x = _read_csv(d / problem.observation_file, problem.data_names(), "data")
    if len(theta) != 1 or len(x) != 1:
        raise InputError(f"{d}: true_parameters.csv and {problem.observation_file} must hold one row each")
    return theta[0], x[0]


def read_sbibm_reference(problem: SBIProblem, reference_dir: str | Path, k: int, n: int) -> np.ndarray:
    """The first ``n`` of sbibm's reference posterior samples (n, d) of observation ``k`` (0-based)."""
    path = _sbibm_dir(reference_dir, k) / "reference_posterior_samples.csv.bz2"
    a = _read_csv(path, list(problem.param_names), "parameter")
    if len(a) < n:
        raise InputError(f"{path}: {len(a)} reference samples, fewer than eval.reference_samples={n}")
    return a[:n]


def _write_observation(problem: SBIProblem, d: Path, theta: np.ndarray, x: np.ndarray, samples: np.ndarray) -> None:
    import pandas as pd
    d.mkdir(parents=True, exist_ok=True)
    names = problem.param_names
    pd.DataFrame([theta], columns=names).to_csv(d / "true_parameters.csv", index=False)
    if problem.is_map:
        np.save(d / "observation.npy", x)
    else:
        pd.DataFrame([x.reshape(-1)], columns=problem.data_names()).to_csv(d / "observation.csv", index=False)
    with atomic_path(d / "reference_posterior_samples.csv.bz2") as tmp:  # readers never see half a file
        pd.DataFrame(samples, columns=names).to_csv(tmp, index=False, float_format="%.8g", compression="bz2")


class SBIDataModule(BaseDataModule):
    """Simulated (theta, x) pairs of ``data.problem`` (module docstring)."""

    def __init__(self, cfg: Mapping[str, Any], seed: int = 0):
        super().__init__(cfg, seed)
        c = self.cfg
        if int(c["num_sbc"]) < int(c["num_observations"]):
            raise ConfigError(f"data.num_sbc ({c['num_sbc']}) must be >= data.num_observations "
                              f"({c['num_observations']}): the observations are the first SBC pairs")
        self.problem: SBIProblem = get_problem(c["problem"], problem_config(c))
        if c["reference_dir"]:
            check_sbibm_dir(self.problem, c["reference_dir"], int(c["num_observations"]))
        self._check_memory()
        self.export_suffix = ".npy" if self.problem.is_map else ".csv"
        self.stats: dict[str, Any] = {}

    def _check_memory(self) -> None:
        """Refuse a simulation budget whose arrays cannot fit in memory, before simulating:
        ConfigError naming the key and the estimate (float64 while simulated, then float32)."""
        c, p = self.cfg, self.problem
        n = int(c["num_simulations"]) + int(c["num_sbc"])
        per_pair = (int(np.prod(p.x_shape)) + len(p.param_names)) * (8 + 4)
        need = n * per_pair
        avail = _memory_bytes()
        if need > avail:
            raise ConfigError(f"data.num_simulations={c['num_simulations']} (+ data.num_sbc={c['num_sbc']}) needs "
                              f"about {need / 2**30:.1f} GiB for the simulated pairs of problem {p.name!r} "
                              f"({per_pair} bytes each), more than this machine's {avail / 2**30:.1f} GiB: "
                              f"lower data.num_simulations")

    # --- simulation -------------------------------------------------------------------
    def simulate(self, split: str, n: int) -> dict[str, np.ndarray]:
        """``n`` (theta, x) pairs of ``split`` (chunk c from ``sample_rng(seed, split, c)``);
        a progress bar on long budgets."""
        from cosmobench.datamodule import progress
        thetas, xs = [], []
        n_chunks = -(-n // CHUNK)
        for c in progress(range(n_chunks), n_chunks, f"simulating {split} ({n} pairs)", min_total=20):
            rng = sample_rng(self.seed, split, c)
            theta = self.problem.sample_prior(CHUNK, rng)
            thetas.append(theta)
            xs.append(self.problem.simulate(theta, rng))
        theta = np.concatenate(thetas)[:n]
        x = np.concatenate(xs)[:n]
        if not np.all(np.isfinite(x)):
            raise InputError(f"problem {self.problem.name!r} simulated non-finite data in the {split} split")
        return {"theta": theta.astype(np.float32), "x": x.astype(np.float32)}

    def build(self):
        c = self.cfg
        n = int(c["num_simulations"])
        n_val = min(max(1, int(round(float(c["val_fraction"]) * n))), n - 2)
        splits = {"train": self.simulate("train", n - n_val), "val": self.simulate("val", n_val),
                  "test": self.simulate("test", int(c["num_sbc"]))}
        if c["reference_dir"]:  # the benchmark observations are sbibm's published ones
            test = splits["test"]
            for k in range(int(c["num_observations"])):
                theta_k, x_k = read_sbibm_observation(self.problem, c["reference_dir"], k)
                test["theta"][k], test["x"][k] = theta_k, x_k.reshape(self.problem.x_shape)
        th, x = splits["train"]["theta"].astype(np.float64), splits["train"]["x"].astype(np.float64)
        x_flat = x.reshape(len(x), -1)
        self.stats = {"theta_mean": th.mean(0).tolist(), "theta_std": _safe_std(th.std(0, ddof=1)).tolist()}
        if self.problem.is_map:  # one scale for all pixels (the embedding CNN normalises its input)
            self.stats.update(x_mean=[float(x_flat.mean())], x_std=[float(_safe_std(np.array([x_flat.std()]))[0])])
        else:
            self.stats.update(x_mean=x_flat.mean(0).tolist(), x_std=_safe_std(x_flat.std(0, ddof=1)).tolist())
        return {s: ArrayDataset(a) for s, a in splits.items()}

    def info(self) -> dict[str, Any]:
        self.setup()
        p = self.problem
        return {"problem": p.name, "problem_cfg": problem_config(self.cfg), "param_names": list(p.param_names),
                "x_shape": list(p.x_shape), "is_map": bool(p.is_map), "seed": self.seed,
                "num_observations": int(self.cfg["num_observations"]), "reference_dir": self.cfg["reference_dir"],
                **self.stats}

    # --- predict ----------------------------------------------------------------------
    def export(self, split: str, path: str | Path) -> Path:
        """The first ``data.num_observations`` observations of the test split (other splits:
        all items) as a predict input: CSV with ``data_1 ... data_D`` (FITS/ECSV by suffix)
        or, for map problems, a ``.npy`` stack (N, H, W)."""
        self.setup()
        x = self.datasets[split].arrays["x"].numpy()
        if split == "test":
            x = x[: int(self.cfg["num_observations"])]
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if self.problem.is_map:
            np.save(p, x[:, 0])
            return p
        from cosmobench.io import write_table
        return write_table({n: x[:, i] for i, n in enumerate(self.problem.data_names())}, p)

    def read_input(self, path: str | Path) -> ArrayDataset:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"input file not found: {p}")
        x = self._read_maps(p) if self.problem.is_map else self._read_vectors(p)
        if not np.all(np.isfinite(x)):
            raise InputError(f"{p}: observed data contain non-finite values")
        return ArrayDataset({"x": x.astype(np.float32)})

    def _read_vectors(self, p: Path) -> np.ndarray:
        D = self.problem.dim_x
        name = p.name.lower()
        if name.endswith(".npy"):
            try:
                a = np.load(p, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise InputError(f"{p} is not a readable .npy array: {exc}") from None
            a = np.asarray(a, np.float64)
            if a.ndim == 1:
                a = a[None]
        else:
            from cosmobench.io import numeric_column, read_table
            table = read_table(p)
            names = self.problem.data_names()
            data_cols = [c for c in table if re.fullmatch(r"data_\d+", str(c))]
            if data_cols and len(data_cols) != D:  # sbibm's layout of another problem
                raise InputError(f"{p}: {len(data_cols)} data_* columns, but problem {self.problem.name!r} "
                                 f"observes {D} values (data_1 ... data_{D}): an observation of another problem?")
            if all(n in table for n in names):
                cols = names
            elif len(table) == D:
                cols = list(table)
            else:
                raise InputError(f"{p}: expected columns {names[0]} ... {names[-1]} (sbibm's observation.csv) "
                                 f"or exactly {D} columns, found {len(table)}: {', '.join(list(table)[:8])}")
            a = np.stack([numeric_column(table[c]) for c in cols], axis=1)
        if a.ndim != 2 or a.shape[1] != D or len(a) == 0:
            raise InputError(f"{p}: expected observations of {D} values for problem {self.problem.name!r}, "
                             f"got an array of shape {a.shape}")
        return a

    def _read_maps(self, p: Path) -> np.ndarray:
        from cosmobench.images import read_image_file, read_image_stack
        shape = tuple(self.problem.x_shape[-2:])
        try:
            a = read_image_file(p, 1)[None]                  # one map (H, W) -> (1, 1, H, W)
        except InputError:
            a = read_image_stack(p, n_bands=1)              # a stack (N, H, W) -> (N, 1, H, W)
        if tuple(a.shape[-2:]) != shape:
            raise InputError(f"{p}: maps of {a.shape[-2]}x{a.shape[-1]} pixels, but the model was trained on "
                             f"{shape[0]}x{shape[1]} (data.map_size)")
        return np.asarray(a, np.float64)


def _memory_bytes() -> int:
    """Physical memory of this machine (bytes)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _safe_std(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, np.float64)
    return np.where(s > 0, s, 1.0)
