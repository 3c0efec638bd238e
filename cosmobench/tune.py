"""``cosmobench tune TASK -m MODEL --trials N [--jobs J]``: hyper-parameter search with Optuna.

*Search space.* Declared per model beside its settings, as the ``SEARCH_SPACE`` dict of its
settings class (:func:`cosmobench.settings.search_space`; e.g. ``{"optim.lr": ["log", 1e-4,
1e-2], "model.base_channels": ["choice", [8, 16, 32]]}``; kinds ``log``/``float``/``int``
with bounds, ``choice`` with a list), merged over the model's settings classes; ``--space
KEY=KIND:...`` adds or replaces a key (``optim.lr=log:1e-4:1e-2``, ``model.depth=choice:2,3``).
Every key must be a key of the model's config and every bound or choice a valid value of it
(checked before anything runs, ``ConfigError``).

*Trials.* Each trial is one training run of the base config (the task's layers, ``-c``,
``KEY=VALUE``) with the sampled values, through :func:`cosmobench.runner.fit_validate`: fit
on the train split, best checkpoint by ``val_loss``, scored on the **validation** split (the
task's primary metric in its direction, or ``--objective val_loss``). The test split is
never read (a stand-in raises if anything tries). Sampler: TPE (a third of the budget, at
least 2 and at most 10 trials, random first); pruning: the median rule on the per-epoch
``val_loss`` reported by :class:`PruningCallback` (a small Lightning callback), after 2
finished trials. A trial that fails (e.g. a NaN loss) counts towards the budget; Ctrl-C
marks the running trial failed-and-interrupted (it does not count) and exits 130.

*Storage.* Studies live in ``ROOT/tune.sqlite`` (Optuna's RDB storage; beside the results
store), named ``<task>-<model>-<hash>`` from the base config, objective and space, so
running the same command again resumes the study and runs only the trials still missing
(``--trials`` is the study's total); several processes (``--jobs J``, or the same command
on several machines sharing ROOT) work on one study. Trial run dirs are
``ROOT/tune/<study>/trial-<n>/`` (config and result; checkpoints are removed).

*Result.* ``ROOT/tune/<study>.best.yaml``: a config layer with the base layer, overrides
and the best values (``cosmobench train TASK -m MODEL -c ROOT/tune/<study>.best.yaml``), and
``ROOT/tune/<study>.json`` (study, budget, best values, the tuned config's experiment hash,
read by the leaderboard to mark tuned entries with their budget).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from cosmobench import config as C
from cosmobench.errors import ConfigError, RunFailure
from cosmobench.signals import INTERRUPTS

KINDS = ("log", "float", "int", "choice")
STORE = "tune.sqlite"
TUNE_DIR = "tune"

class _TrialFailed(Exception):
    """A trial's run failed (e.g. NaN loss): the trial is FAIL and counts towards the budget."""


class _Surplus(Exception):
    """Another worker took the budget's last trial meanwhile: this one is dropped (not counted)."""


# --- search spaces ---------------------------------------------------------------------
def declared_space(task: str, model: str | None) -> dict[str, list]:
    """The model's declared search space (merged over its settings classes)."""
    from cosmobench.registry import get_task
    from cosmobench.settings import search_space
    spec = get_task(task)
    model = spec.model_or_default(model)
    out: dict[str, list] = {}
    for ref in spec.models[model]:
        out.update(search_space(ref))
    return out


def parse_space_option(text: str) -> tuple[str, list]:
    """``KEY=log:LO:HI`` | ``float:LO:HI`` | ``int:LO:HI`` | ``choice:A,B,...`` -> (key, spec)."""
    key, sep, rhs = text.partition("=")
    kind, _, rest = rhs.partition(":")
    if not sep or kind not in KINDS or not rest:
        raise ConfigError(f"--space {text!r}: expected KEY=log:LO:HI, float:LO:HI, int:LO:HI or choice:A,B,...")
    if kind == "choice":
        return key, ["choice", [C.parse_value(v) for v in rest.split(",")]]
    lo, _, hi = rest.partition(":")
    return key, [kind, C.parse_value(lo), C.parse_value(hi)]


def check_space(task: str, model: str, space: dict[str, list], config_file=None, overrides: Iterable[str] = ()) -> None:
    """Every key a config key of the model, every spec well-formed, every bound/choice a valid value."""
    from cosmobench.bench.suites import fmt_value
    if not space:
        return
    base = C.resolve(task, model, config_file, overrides)
    for key, spec in space.items():
        where = f"search space of {task}/{model}: {key}"
        node: Any = base
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"{where}: not a key of the model's config")
            node = node[part]
        if key in ("seed", "model.name") or key.startswith("trainer."):
            raise ConfigError(f"{where}: not a tunable key")
        if not isinstance(spec, list) or not spec or spec[0] not in KINDS:
            raise ConfigError(f"{where}: expected [kind, ...] with kind one of {', '.join(KINDS)}, got {spec!r}")
        kind = spec[0]
        if kind == "choice":
            if len(spec) != 2 or not isinstance(spec[1], list) or not spec[1]:
                raise ConfigError(f"{where}: expected ['choice', [values...]], got {spec!r}")
            values = spec[1]
        else:
            if len(spec) != 3 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in spec[1:]) \
                    or not spec[1] < spec[2] or (kind == "log" and spec[1] <= 0) \
                    or (kind == "int" and any(not isinstance(v, int) for v in spec[1:])):
                raise ConfigError(f"{where}: expected ['{kind}', low, high] with low < high"
                                  f"{' > 0' if kind == 'log' else ''}, got {spec!r}")
            values = spec[1:]
        for v in values:
            try:
                C.resolve(task, model, config_file, [*overrides, f"{key}={fmt_value(v)}"])
            except ConfigError as exc:
                raise ConfigError(f"{where}: value {v!r} is not valid: {exc}") from None


def describe_space(task: str, model: str | None) -> str:
    space = declared_space(task, model)
    if not space:
        return f"{task}/{model}: no declared search space (nothing to tune)\n"
    return "".join(f"{k}: {json.dumps(v)}\n" for k, v in space.items())


def _suggest(trial, space: dict[str, list]) -> dict[str, Any]:
    out = {}
    for key, spec in space.items():
        kind = spec[0]
        if kind == "log":
            out[key] = trial.suggest_float(key, float(spec[1]), float(spec[2]), log=True)
        elif kind == "float":
            out[key] = trial.suggest_float(key, float(spec[1]), float(spec[2]))
        elif kind == "int":
            out[key] = trial.suggest_int(key, int(spec[1]), int(spec[2]))
        else:  # choices may be lists (channel widths): Optuna stores their JSON text
            labels = [json.dumps(v) for v in spec[1]]
            out[key] = json.loads(trial.suggest_categorical(key, labels))
    return out


def _overrides(values: dict[str, Any]) -> list[str]:
    from cosmobench.bench.suites import fmt_value
    return [f"{k}={fmt_value(v)}" for k, v in values.items()]


# --- the pruning callback --------------------------------------------------------------
def pruning_callback(trial, monitor: str = "val_loss"):
    """A Lightning callback reporting ``monitor`` after every validation epoch to the Optuna
    trial, and stopping the fit when the pruner says so (:attr:`pruned`; the caller raises
    ``optuna.TrialPruned`` after the fit, so Lightning ends cleanly)."""
    import pytorch_lightning as pl

    class PruningCallback(pl.Callback):
        def __init__(self):
            self.pruned_at: int | None = None

        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking:
                return
            value = trainer.callback_metrics.get(monitor)
            if value is None:
                return
            value = float(value)
            if not math.isfinite(value):
                return  # the run fails on its own (NaN loss)
            trial.report(value, step=trainer.current_epoch)
            if trial.should_prune():
                self.pruned_at = trainer.current_epoch
                trainer.should_stop = True

    return PruningCallback()


# --- studies ---------------------------------------------------------------------------
def study_name(task: str, model: str, base_cfg: dict, objective: str, space: dict) -> str:
    import hashlib
    key = json.dumps({"config": C.config_hash(base_cfg, C.BOOKKEEPING_KEYS), "objective": objective,
                      "space": space}, sort_keys=True)
    return f"{task}-{model}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def _lock(root: Path) -> int:
    """An exclusive ``flock`` on ``ROOT/tune.sqlite.lock`` (released by closing the fd)."""
    import fcntl
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / f"{STORE}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def storage(root: Path):
    """Optuna's RDB storage in ``ROOT/tune.sqlite`` (waits for other writers, fails stale trials)."""
    import warnings

    import optuna
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    root.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(f"sqlite:///{(root / STORE).resolve()}",
                                      engine_kwargs={"connect_args": {"timeout": 120}},
                                      heartbeat_interval=30, grace_period=120)


def _counted(trials, running: bool = True) -> int:
    """Trials that count towards the budget: complete, pruned, failed while running (a NaN
    loss: ``run_failed``), and (``running``) those still running; not interrupted, surplus
    or stale (killed) ones."""
    import optuna
    S = optuna.trial.TrialState
    live = (S.RUNNING, S.WAITING) if running else ()
    return sum(1 for t in trials if t.state in (S.COMPLETE, S.PRUNED, *live)
               or (t.state == S.FAIL and t.user_attrs.get("run_failed")))


@dataclass
class TuneResult:
    study: str
    task: str
    model: str
    trials: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_layer: Path | None = None
    seconds: float = 0.0
    note: str = ""
    flat: bool = False   # every complete trial scored the same: the objective told the sampler nothing

    def summary(self) -> str:
        if self.note:
            return f"tune {self.task}/{self.model}: {self.note}"
        best = ", ".join(f"{k}={v}" for k, v in self.best_params.items())
        return (f"study {self.study}: {self.complete} complete, {self.pruned} pruned, {self.failed} failed "
                f"(budget {self.trials}); best {self.best_value:.6g} with {best}\n"
                f"best config layer: {self.best_layer} (use with: cosmobench train {self.task} -m {self.model} "
                f"-c {self.best_layer})" + (f"\nwarning: {FLAT_WARNING}" if self.flat else ""))


FLAT_WARNING = ("every complete trial scored the same objective value on the validation split: the search "
                "learned nothing and the 'best' trial is the first one (check the task's validation metric)")


def tune(task: str, model: str | None = None, trials: int = 10, jobs: int = 1, config_file: str | Path | None = None,
         overrides: Iterable[str] = (), root: str | Path | None = None, objective: str = "metric",
         study: str | None = None, space: dict[str, list] | None = None, enqueue: list[dict] = (),
         log=None) -> TuneResult:
    """Run (or resume) the study until it holds ``trials`` counted trials (module docstring).
    ``space`` adds to / replaces keys of the declared space; ``enqueue``: parameter sets the
    first trials of a fresh study try (then TPE)."""
    import optuna
    from cosmobench.registry import get_task
    from cosmobench.results import default_root

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    spec = get_task(task)
    model = spec.model_or_default(model)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs!r}")
    if objective not in ("metric", "val_loss"):
        raise ConfigError(f"--objective must be metric or val_loss, got {objective!r}")
    overrides = [o for o in overrides if not o.startswith("resume=")]
    extra_space = dict(space or {})
    space = {**declared_space(task, model), **extra_space}
    base = C.resolve(task, model, config_file, overrides)
    if not space:
        return TuneResult("", task, model, trials, note="no declared search space: nothing to tune")
    check_space(task, model, space, config_file, overrides)
    root = default_root(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root {root} is not a directory")
    name = study or study_name(task, model, base, objective, space)
    direction = ("minimize" if spec.mode == "min" else "maximize") if objective == "metric" else "minimize"
    t0 = time.time()
    sampler = optuna.samplers.TPESampler(n_startup_trials=min(10, max(2, trials // 3)))
    # no pruning in the first third of the epochs: an early val_loss favours high learning rates
    epochs = base["trainer"]["max_epochs"]
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2,
                                         n_warmup_steps=epochs // 3 if isinstance(epochs, int) and epochs > 0 else 0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lock = _lock(root)  # Optuna creates the schema of a new storage: one process at a time
    try:
        st = storage(root)
        st_ = optuna.create_study(storage=st, study_name=name, direction=direction, sampler=sampler,
                                  pruner=pruner, load_if_exists=True)
        st_.set_user_attr("task", task)
        st_.set_user_attr("model", model)
        st_.set_user_attr("objective", objective)
        if enqueue and not st_.trials:
            for params in enqueue:
                st_.enqueue_trial({k: json.dumps(v) if space[k][0] == "choice" else v for k, v in params.items()})
    finally:
        os.close(lock)
    log(f"[tune] study {name} in {root / STORE}: {_counted(st_.trials)} of {trials} trials done; "
        f"objective: {spec.primary_metric if objective == 'metric' else 'val_loss'} on the validation split; "
        f"{jobs} worker(s)")
    helpers = []
    if jobs > 1:  # other processes join the same study
        argv = [sys.executable, "-m", "cosmobench.cli", "tune", task, "-m", model, "--trials", str(trials),
                "--jobs", "1", "--study", name, "--objective", objective, "--root", str(root),
                *(["-c", str(config_file)] if config_file else []),
                *[f"--space={k}={_space_text(v)}" for k, v in extra_space.items()], *overrides]
        helpers = [subprocess.Popen(argv) for _ in range(jobs - 1)]
    try:
        _work(st_, name, task, model, trials, config_file, overrides, space, objective, root, spec, log)
    finally:
        for h in helpers:
            h.wait()
    res = _finish(st_, name, task, model, trials, config_file, overrides, space, root, time.time() - t0)
    if res.flat:
        log(f"[tune] warning: study {name}: {FLAT_WARNING}")
    return res


def _space_text(spec: list) -> str:
    from cosmobench.bench.suites import fmt_value
    if spec[0] == "choice":
        return "choice:" + ",".join(fmt_value(v) for v in spec[1])
    return f"{spec[0]}:{spec[1]}:{spec[2]}"


def _work(study, name, task, model, trials, config_file, overrides, space, objective, root, spec, log) -> None:
    """Run one trial at a time (``study.optimize``: heartbeats, stale trials of killed workers
    failed) until the study holds ``trials`` counted ones."""
    import logging

    import optuna
    for name_ in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name_).setLevel(logging.WARNING)  # one line per trial, not Lightning's chatter

    current: list = []

    def objective_fn(trial):
        current[:] = [trial]
        trial.set_user_attr("pid", os.getpid())
        ahead = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        if _counted(ahead) >= trials:
            raise _Surplus()
        values = _suggest(trial, space)
        trial_dir = root / TUNE_DIR / name / f"trial-{trial.number:04d}"
        t0 = time.time()
        state, value, info = _run_trial(trial, task, model, config_file, overrides, values, objective, spec,
                                        trial_dir)
        trial.set_user_attr("seconds", round(time.time() - t0, 2))
        for k, v in info.items():
            trial.set_user_attr(k, v)
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        log(f"[tune] trial {trial.number} {state}" + (f" {value:.6g}" if state == "complete" else "")
            + f" ({time.time() - t0:.0f} s): {shown}" + (f" | {info.get('error')}" if info.get("error") else ""))
        if state == "pruned":
            raise optuna.TrialPruned()
        if state == "failed":
            trial.set_user_attr("run_failed", True)
            raise _TrialFailed(info.get("error", "failed"))
        return value

    while _counted(study.get_trials(deepcopy=False), running=False) < trials:
        last = max((t.number for t in study.get_trials(deepcopy=False)), default=-1)
        try:
            study.optimize(objective_fn, n_trials=1, catch=(_TrialFailed,))
        except _Surplus:
            return
        except (*INTERRUPTS, SystemExit) as exc:
            # Lightning turns Ctrl-C into SystemExit; the trial is failed and not counted
            if isinstance(exc, SystemExit) and not isinstance(exc.__context__, INTERRUPTS):
                raise
            # this process's running trial: the objective's, or one asked for before the objective began
            mine = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING
                    and (t.user_attrs.get("pid") == os.getpid() or ("pid" not in t.user_attrs and t.number > last))]
            for t in mine:
                study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)
                log(f"[tune] trial {t.number} interrupted; the same command resumes the study")
            raise KeyboardInterrupt(f"study {name} stopped; the same command resumes it") from None


def _run_trial(trial, task, model, config_file, overrides, values, objective, spec, trial_dir: Path):
    from cosmobench.runner import fit_validate
    cfg = C.resolve(task, model, config_file, [*overrides, *_overrides(values), "logger=none", "plots=false",
                                               "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"])
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "config.yaml").write_text(C.to_yaml(cfg))
    cb = pruning_callback(trial)
    info: dict[str, Any] = {}
    try:
        res = fit_validate(cfg, trial_dir, callbacks=[cb], objective=objective)
    except RunFailure as exc:
        info["error"] = str(exc)
        return "failed", None, info
    except Exception as exc:  # noqa: BLE001 - a diverging trial is a failed trial, not the end of the study
        from cosmobench.errors import CosmobenchError, InputError
        if isinstance(exc, (ConfigError, InputError)) or (isinstance(exc, CosmobenchError) and exc.exit_code == 2):
            raise
        info["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return "failed", None, info
    finally:
        shutil.rmtree(trial_dir / "checkpoints", ignore_errors=True)
    info["val_loss"] = res["val_loss"]
    if cb.pruned_at is not None:
        info["pruned_at_epoch"] = cb.pruned_at
        (trial_dir / "result.json").write_text(json.dumps({"state": "pruned", **info}, indent=1) + "\n")
        return "pruned", None, info
    value = res["val_loss"] if objective == "val_loss" else res["metrics"].get(spec.primary_metric)
    if value is None or not math.isfinite(float(value)):
        info["error"] = f"objective {value!r} is not finite"
        return "failed", None, info
    info["val_metrics"] = {k: float(v) for k, v in (res.get("metrics") or {}).items()}
    (trial_dir / "result.json").write_text(json.dumps({"state": "complete", "value": float(value), **info},
                                                      indent=1, sort_keys=True) + "\n")
    return "complete", float(value), info


def _finish(study, name, task, model, trials, config_file, overrides, space, root: Path, seconds: float) -> TuneResult:
    """The best config layer and the study summary (only once some trial completed)."""
    import optuna
    from cosmobench.io import atomic_path
    S = optuna.trial.TrialState
    all_trials = study.get_trials(deepcopy=False)
    res = TuneResult(name, task, model, trials, seconds=round(seconds, 1),
                     complete=sum(t.state == S.COMPLETE for t in all_trials),
                     pruned=sum(t.state == S.PRUNED for t in all_trials),
                     failed=sum(t.state == S.FAIL and bool(t.user_attrs.get("run_failed")) for t in all_trials))
    if not res.complete:
        raise RunFailure(f"study {name}: no trial completed ({res.pruned} pruned, {res.failed} failed)")
    best = study.best_trial
    res.flat = res.complete > 1 and len({t.value for t in all_trials if t.state == S.COMPLETE}) == 1
    values = {k: (json.loads(v) if space[k][0] == "choice" else v) for k, v in best.params.items()}
    res.best_value, res.best_params = float(best.value), values
    layer = C.load_yaml(config_file) if config_file else {}
    plain = [o for o in overrides if not o.startswith(("seed=", "resume="))]
    layer = C.deep_merge(layer, C.parse_overrides([*plain, *_overrides(values)]))
    tuned_cfg = C.resolve(task, model, config_file, [*plain, *_overrides(values)])
    out_dir = root / TUNE_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    res.best_layer = out_dir / f"{name}.best.yaml"
    header = (f"# best of study {name} ({res.complete} complete, {res.pruned} pruned, {res.failed} failed; budget "
              f"{trials} trials): {study.user_attrs.get('objective', 'metric')} {res.best_value:.6g} on the "
              f"validation split\n# use: cosmobench train {task} -m {model} -c {res.best_layer}\n")
    with atomic_path(res.best_layer) as tmp:
        tmp.write_text(header + C.to_yaml(layer))
    summary = {"study": name, "task": task, "model": model, "trials": trials, "complete": res.complete,
               "pruned": res.pruned, "failed": res.failed, "best_value": res.best_value, "best_params": values,
               "flat_objective": res.flat,
               "objective": study.user_attrs.get("objective", "metric"), "direction": study.direction.name.lower(),
               "base_config_hash": C.config_hash(C.resolve(task, model, config_file, plain), C.BOOKKEEPING_KEYS),
               "tuned_config_hash": C.config_hash(tuned_cfg, C.BOOKKEEPING_KEYS), "best_layer": str(res.best_layer),
               "space": space, "storage": str(root / STORE)}
    with atomic_path(out_dir / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return res


def tuned_overrides(root: Path, task: str, model: str, config_file, overrides: Iterable[str],
                    objective: str = "metric") -> tuple[str, list[str] | None, int]:
    """(study name, the best values as overrides or None if the study has no summary yet,
    counted trials) of the study that ``tune`` would use for this base config. No optuna import."""
    space = declared_space(task, model)
    plain = [o for o in overrides if not o.startswith(("seed=", "resume="))]
    if not space:
        return "", [], 0
    base = C.resolve(task, model, config_file, plain)
    name = study_name(task, model, base, objective, space)
    path = Path(root) / TUNE_DIR / f"{name}.json"
    try:
        doc = json.loads(path.read_text())
        return name, _overrides(doc["best_params"]), int(doc["trials"])
    except (OSError, ValueError, KeyError, TypeError):
        return name, None, 0


__all__ = ["tune", "TuneResult", "declared_space", "check_space", "describe_space", "parse_space_option",
           "pruning_callback", "study_name", "tuned_overrides", "STORE", "TUNE_DIR"]
