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
