"""A tuned suite (``tune: {trials: N}``) away from ``bench`` itself: ``--verify``,
``--print-config`` and the SLURM launcher read the studies from ``--root`` (they used to
expand the suite without it, i.e. untuned: verify found no stored row, SLURM ran untuned
seeds), and SLURM tunes first through its own job array."""
import json
import os
import subprocess

from conftest import db_rows, run_cli

TINY = ["logger=none", "plots=false", "data.n_train=300", "data.n_val=100", "data.n_test=100"]


def tuned_suite(tmp_path, trials=2):
    import yaml
    p = tmp_path / "tuned.yaml"
    p.write_text(yaml.safe_dump({"seeds": 2, "overrides": TINY,
                                 "tasks": {"photoz": {"models": ["knn"], "tune": {"trials": trials}}}}))
    return p


def test_verify_and_print_config_of_a_tuned_suite_use_the_root(tmp_path):
    from cosmobench import bench
    root = tmp_path / "runs"
    s = tuned_suite(tmp_path)
    report = bench.run_suite(s, root=root, log=lambda m: None)
    assert len(report.ok) == 2
    (summary,) = (root / "tune").glob("*.json")
    k = json.loads(summary.read_text())["best_params"]["model.k"]
    lines = []
    res = bench.verify(s, root=root, log=lines.append)
    assert [r.status for r in res] == ["same"], lines
    assert f"model.k={k}" in res[0].job.overrides
    other = tmp_path / "elsewhere"  # COSMOBENCH_HOME points elsewhere: --root must win
    other.mkdir()
    out = run_cli(["bench", str(s), "--root", str(root), "--print-config"], other)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count(f"\n  k: {k}\n") == 2, out.stdout[:3000]


def test_slurm_tunes_first_then_runs_the_seeds_at_the_tuned_values(tmp_path):
    from cosmobench import bench
    root = (tmp_path / "runs").resolve()
    s = tuned_suite(tmp_path)
    out = run_cli(["bench", str(s), "--launcher", "slurm", "--root", str(root)], root.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    slurm = root / "slurm" / "tuned"
    script, manifest = slurm / "tune.sbatch", json.loads((slurm / "tune_manifest.json").read_text())
    assert "tune.sbatch (1 array jobs)" in out.stdout and "run this command again" in out.stderr
    assert not (slurm / "bench.sbatch").exists()  # no untuned seeds are ever scheduled
    assert "#SBATCH --array=0-0" in script.read_text() and "photoz" not in script.read_text()
    (study,) = manifest["studies"]
    assert (study["task"], study["model"], study["trials"]) == ("photoz", "knn", 2)
    env = {**os.environ, "WANDB_MODE": "disabled", "SLURM_ARRAY_TASK_ID": "0"}
    bad = subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": "1"}, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "not a study of this suite" in bad.stderr
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((root / "tune" / f"{study['study']}.json").read_text())
    assert doc["trials"] == 2 and not db_rows(root)  # tuning wrote no result row and no test metric
    # the same command now writes the seeds' array, at the tuned values
    out = run_cli(["bench", str(s), "--launcher", "slurm", "--root", str(root)], root.parent)
    assert out.returncode == 0 and "bench.sbatch (2 array jobs)" in out.stdout, out.stderr[-2000:]
    jobs = json.loads((slurm / "manifest.json").read_text())["jobs"]
    _, expected = bench.expand(s, root=root)
    assert [j["config_hash"] for j in jobs] == [j.config_hash for j in expected]
    assert all(f"model.k={doc['best_params']['model.k']}" in j["overrides"] and j["tune"]["trials"] == 2
               and "pending" not in j["tune"] for j in jobs)
    run = subprocess.run(["bash", str(slurm / "bench.sbatch")], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    (row,) = db_rows(root)
    assert (row["status"], row["config_hash"]) == ("ok", expected[0].config_hash)
