"""Bad input of the config/CLI side (issue 7 §1, §2, §5): every class is rejected at its
root with exit 2 and ONE line on stderr, before anything is written. Each class is tried
with several members, including ones no one reported."""
import json
import os
import sys
import time

import pytest

from conftest import HERE, run_cli
from cosmobench import cli
from cosmobench import config as C
from cosmobench.errors import ConfigError, InputError

TINY = str(HERE / "conf" / "photoz.yaml")


def run_main(args, root, capsys, monkeypatch):
    """``cosmobench ARGS`` in this process (faster than a subprocess): (exit code, stderr)."""
    monkeypatch.setenv("COSMOBENCH_HOME", str(root))
    monkeypatch.chdir(root)
    code = cli.main(args)
    return code, capsys.readouterr().err


def assert_one_line_exit_2(code, err, needle, root=None):
    assert code == 2, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("cosmobench: error: "), err
    reason = lines[0][len("cosmobench: error: "):]
    assert reason.strip() and not reason.rstrip().endswith(":")
    assert needle in lines[0], lines[0]
    if root is not None:
        assert sorted(p.name for p in root.iterdir()) == [], "something was written"


# --- 1. values out of range / not a choice: never reach a constructor ---------------------
@pytest.mark.parametrize("task,model,override,needle", [
    ("photoz", "mdn", "model.n_components=0", "model.n_components=0"),
    ("photoz", "mdn", "model.dropout=1.5", "model.dropout=1.5"),
    ("photoz", "mdn", "model.dropout=-0.1", "model.dropout=-0.1"),
    ("photoz", "mdn", "model.hidden=[64,0]", "model.hidden=[64, 0]"),
    ("photoz", "mdn", "model.hidden=[]", "non-empty"),
    ("photoz", "knn", "model.k=0", "model.k=0"),
    ("photoz", "knn", "model.bandwidth=0", "model.bandwidth=0"),
    ("photoz", "mdn", "data.num_workers=-1", "data.num_workers=-1"),
    ("photoz", "mdn", "data.batch_size=0", "data.batch_size=0"),
    ("photoz", "mdn", "data.n_test=-5", "data.n_test=-5"),
    ("photoz", "mdn", "data.val_fraction=1.0", "data.val_fraction=1.0"),
    ("photoz", "mdn", "data.z_max=-1", "data.z_max=-1"),
    ("photoz", "mdn", "seed=-1", "seed=-1"),
    ("photoz", "mdn", "num_threads=0", "num_threads=0"),
    ("photoz", "mdn", "optim.lr=0", "optim.lr=0"),
    ("photoz", "mdn", "optim.weight_decay=-1", "optim.weight_decay=-1"),
    ("photoz", "mdn", "optim.momentum=1.0", "optim.momentum=1.0"),
    ("photoz", "mdn", "early_stopping.patience=-2", "early_stopping.patience=-2"),
    ("photoz", "mdn", "trainer.num_nodes=0", "trainer.num_nodes=0"),
    ("morphology", "cnn", "model.channels=[8,-16]", "model.channels"),
    ("morphology", "cnn", "data.image_size=2", "data.image_size=2"),
    ("morphology", "cnn", "data.psf=airy", "data.psf='airy'"),
    ("morphology", "cnn", "data.moffat_beta=1", "data.moffat_beta=1"),
    ("morphology", "resnet18", "model.stem_stride=3", "model.stem_stride=3"),
    ("morphology", "e2cnn", "model.group=D0", "model.group='D0'"),
    ("photoz", "mdn", "plots=yes please", "plots="),
    ("photoz", "mdn", "data.n_train=null", "data.n_train=None"),       # null only where the spec says so
    ("photoz", "mdn", "optim.lr=null", "optim.lr=None"),
    ("photoz", "mdn", "seed=true", "seed=True"),                       # a bool is not an int
])
def test_out_of_range_values_rejected(task, model, override, needle):
    with pytest.raises(ConfigError, match="must be") as err:
        C.resolve(task, model, overrides=[override])
    assert needle in str(err.value)


# --- 2. non-finite numbers, anywhere -----------------------------------------------------
@pytest.mark.parametrize("yaml_text,needle", [
    ("optim:\n  lr: .nan\n", "optim.lr=nan"),
    ("optim:\n  lr: .inf\n", "optim.lr=inf"),
    ("optim:\n  weight_decay: -.inf\n", "optim.weight_decay=-inf"),
    ("data:\n  depth_5sigma: [26.1, .nan, 27.5, 26.8, 26.1]\n", "data.depth_5sigma"),
    ("data:\n  mag_limit: 1e400\n", "data.mag_limit=inf"),       # overflows to inf when parsed
    ("trainer:\n  gradient_clip_val: .inf\n", "trainer.gradient_clip_val=inf"),
])
def test_non_finite_numbers_rejected(tmp_path, yaml_text, needle):
    f = tmp_path / "c.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError, match="finite numbers only") as err:
        C.resolve("photoz", "mdn", config_file=f)
    assert needle in str(err.value)


@pytest.mark.parametrize("override", ["optim.lr=.nan", "optim.lr=.inf", "optim.lr=nan", "optim.lr=-inf",
                                      "optim.lr=1e999"])
def test_non_finite_on_command_line(override):
    with pytest.raises(ConfigError, match="optim.lr"):
        C.resolve("photoz", "mdn", overrides=[override])


def test_bad_values_through_cli_write_nothing(root, capsys, monkeypatch):
    for args, needle in [
        (["train", "photoz", "-m", "mdn", "model.n_components=0"], "model.n_components=0"),
        (["train", "photoz", "data.num_workers=-1"], "data.num_workers=-1"),
        (["train", "photoz", "optim.lr=.nan"], "optim.lr=nan"),
        (["train", "photoz", "optim.name=lbfgs"], "optim.name='lbfgs'"),
        (["train", "photoz", "optim.scheduler=step", "trainer.max_epochs=-1"], "finite training length"),
        (["train", "morphology", "-m", "cnn", "model.dropout=1.5"], "model.dropout=1.5"),
        (["bench", "--tasks", "photoz", "data.batch_size=0"], "data.batch_size=0"),
    ]:
        code, err = run_main(args, root, capsys, monkeypatch)
        assert_one_line_exit_2(code, err, needle, root)


# --- 3. config files: encoding, syntax, size, alias bombs, tags ---------------------------
def _bomb(levels: int = 12) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("content,needle", [
    (b"optim:\n  lr: \xff\xfe0.1\n", "not UTF-8 text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text"),
    ("optim: [1, 2\n".encode(), "not valid YAML"),
    ("optim:\n  lr: 0.1\n lr2: 3\n".encode(), "not valid YAML"),
    ("a: 1\n---\nb: 2\n".encode(), "not valid YAML"),
    ("x: !!python/object/apply:os.system ['echo hi']\n".encode(), "not valid YAML"),
    ("- 1\n- 2\n".encode(), "must hold a mapping"),
    ("just a string\n".encode(), "must hold a mapping"),
    (_bomb().encode(), "expands to more than"),
    ("a: &a [*a]\n".encode(), "YAML"),
    (("x: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "config file"),
])
def test_bad_config_files_one_line(root, tmp_path, capsys, monkeypatch, content, needle):
    f = tmp_path / "user.yaml"
    f.write_bytes(content)
    t0 = time.time()
    code, err = run_main(["train", "photoz", "-c", str(f)], root, capsys, monkeypatch)
    assert time.time() - t0 < 30
    assert_one_line_exit_2(code, err, needle, root)


def test_config_file_size_bounded(root, tmp_path, capsys, monkeypatch):
    f = tmp_path / "big.yaml"
    f.write_text("# " + "x" * (C.MAX_YAML_BYTES + 10) + "\n")
    code, err = run_main(["train", "photoz", "-c", str(f)], root, capsys, monkeypatch)
    assert_one_line_exit_2(code, err, "larger than", root)
    code, err = run_main(["train", "photoz", "-c", str(tmp_path)], root, capsys, monkeypatch)
    assert_one_line_exit_2(code, err, "not a regular file", root)


def test_alias_bomb_is_quick_in_a_subprocess(root, tmp_path, capsys, monkeypatch):
    """A few hundred bytes of nested aliases (10**12 nodes expanded) exit 2 quickly, also
    when given on the command line."""
    bomb = _bomb()
    assert len(bomb) < 1000
    f = tmp_path / "bomb.yaml"
    f.write_text(bomb)
    out = run_cli(["train", "photoz", "-c", str(f)], root, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
    assert "expands to more than" in out.stderr and len(out.stdout) < 1000
    inline = "data.mag_columns=" + "{" + bomb.replace("\n", ", ") + "}"
    t0 = time.time()
    C.parse_overrides([inline])  # bounded: the text stays a string, never expanded
    assert time.time() - t0 < 5
    code, err = run_main(["train", "photoz", inline], root, capsys, monkeypatch)
    assert_one_line_exit_2(code, err, "data.mag_columns", root)


# --- 4. configs never read the environment or run code -----------------------------------
@pytest.mark.parametrize("value", [
    "${oc.env:COSMOBENCH_TEST_SECRET}",
    "${oc.env:COSMOBENCH_TEST_SECRET,default}",
    "prefix-${oc.env:COSMOBENCH_TEST_SECRET}",
    "${oc.decode:'${oc.env:COSMOBENCH_TEST_SECRET}'}",
    "${env:COSMOBENCH_TEST_SECRET}",
    "${oc.create:{a: 1}}",
    "${${data.z_column}}",
    "\\${data.z_column}",
])
def test_resolvers_rejected(value, tmp_path, monkeypatch):
    monkeypatch.setenv("COSMOBENCH_TEST_SECRET", "hunter2")
    with pytest.raises(ConfigError, match="configs never read the environment") as err:
        C.resolve("photoz", "mdn", overrides=[f"data.z_column={value}"])
    assert "hunter2" not in str(err.value)
    f = tmp_path / "env.yaml"
    f.write_text(f"data:\n  mag_columns: [a, b, c, d, {json.dumps(value)}]\n")
    with pytest.raises(ConfigError, match="configs never read the environment"):
        C.resolve("photoz", "mdn", config_file=f)


def test_secret_never_reaches_output(root, tmp_path, monkeypatch):
    f = tmp_path / "env.yaml"
    f.write_text("data:\n  path: ${oc.env:COSMOBENCH_TEST_SECRET}\n")
    out = run_cli(["train", "photoz", "-c", str(f), "--print-config"], root,
                  env={"COSMOBENCH_TEST_SECRET": "hunter2"})
    assert out.returncode == 2 and "hunter2" not in out.stdout + out.stderr
    assert list(root.iterdir()) == []


def test_plain_interpolation_still_works():
    cfg = C.resolve("photoz", "mdn", overrides=["data.n_val=${data.n_test}", "data.path=cat_${seed}.csv",
                                                "data.mag_columns=[u, g, r, i, '${data.z_column}']"])
    assert cfg["data"]["n_val"] == cfg["data"]["n_test"] and cfg["data"]["path"] == "cat_0.csv"
    assert cfg["data"]["mag_columns"][-1] == "z_spec"
    with pytest.raises(ConfigError, match="data.n_val='abc'"):  # the resolved value is checked too
        C.resolve("photoz", "mdn", overrides=["data.n_val=${data.z_column}", "data.z_column=abc"])


# --- 5. paths named on the command line --------------------------------------------------
def test_root_naming_a_regular_file(tmp_path, capsys, monkeypatch):
    f = tmp_path / "notadir"
    f.write_text("x")
    for args in (["--root", str(f), "train", "photoz"], ["train", "photoz", "--root", str(f)],
                 ["leaderboard", "--root", str(f)], ["bench", "--root", str(f)]):
        monkeypatch.chdir(tmp_path)
        code = cli.main(args)
        err = capsys.readouterr().err
        assert_one_line_exit_2(code, err, "is not a directory")
    assert f.read_text() == "x"
    monkeypatch.setenv("COSMOBENCH_HOME", str(f))  # the environment default too
    assert_one_line_exit_2(cli.main(["train", "photoz"]), capsys.readouterr().err, "is not a directory")


def test_out_and_output_naming_directories(root, tmp_path, capsys, monkeypatch):
    d = tmp_path / "adir"
    d.mkdir()
    for args in (["leaderboard", "--out", str(d)], ["results", "--out", str(d)],
                 ["predict", "photoz", "-m", "knn", "--input", TINY, "--output", str(d)]):
        code, err = run_main(args, root, capsys, monkeypatch)
        assert_one_line_exit_2(code, err, "is a directory", root)
    assert list(d.iterdir()) == []


def test_leaderboard_out_into_missing_directory_is_created(root, tmp_path, capsys, monkeypatch):
    out = tmp_path / "new" / "deeper" / "board.md"
    code, _ = run_main(["leaderboard", "--out", str(out)], root, capsys, monkeypatch)
    assert code == 0 and out.is_file()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run_main(["leaderboard", "--out", str(blocker / "board.md")], root, capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(blocker) in err


# --- 6. the one-line promise itself ------------------------------------------------------
@pytest.mark.parametrize("exc,code,needle", [
    (ConfigError("first line\nsecond line\n\tthird"), 2, "first line second line third"),
    (InputError(""), 2, "InputError (no details given)"),
    (InputError("cannot read x: "), 2, "cannot read x: (no details given)"),
    (ConfigError("\x1b[31mred\x1b[0m text"), 2, "red text"),
    (PermissionError(13, "Permission denied", "/some/file"), 2, "Permission denied: /some/file"),
    (RuntimeError("boom\nat line 3"), 1, "internal error RuntimeError: boom at line 3"),
])
def test_main_reports_every_error_in_one_line(exc, code, needle, capsys, monkeypatch, tmp_path):
    def boom(args):
        raise exc
    monkeypatch.setitem(cli.COMMANDS, "list", boom)
    monkeypatch.chdir(tmp_path)
    got = cli.main(["list"])
    err = capsys.readouterr().err
    assert got == code
    (line,) = err.strip("\n").split("\n")
    assert line.startswith("cosmobench: error: ") and needle in line
    assert "\x1b" not in line


def test_long_messages_are_bounded():
    assert len(cli.one_line("x" * 100_000)) <= 1010


def test_version_and_help_exit_0(capsys):
    from cosmobench import __version__
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cosmobench {__version__}"
    assert cli.main(["test", "--help"]) == 0
    assert "--checkpoint" in capsys.readouterr().out


def test_usage_errors_one_line(root, capsys, monkeypatch):
    for args, needle in [([], "command"), (["train"], "task"), (["frobnicate"], "frobnicate"),
                         (["train", "photoz", "--bogus"], "--bogus"), (["train", "photoz", "seed"], "key=value"),
                         (["test", "photoz"], "--checkpoint"), (["train", "photoz", "=3"], "key=value"),
                         (["train", "photoz", "a..b=3"], "key=value")]:
        code, err = run_main(args, root, capsys, monkeypatch)
        assert_one_line_exit_2(code, err, needle, root)


# --- 7. optional logger packages ---------------------------------------------------------
def test_missing_logger_package_is_a_config_error(monkeypatch):
    for name in ("tensorboard", "tensorboardX"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    with pytest.raises(ConfigError, match="logger=tensorboard needs .*pip install tensorboard"):
        C.resolve("photoz", "knn", overrides=["logger=tensorboard"])
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ConfigError, match="pip install wandb"):
        C.resolve("photoz", "knn", overrides=["logger=[csv,wandb]"])
    assert C.resolve("photoz", "knn", overrides=["logger=csv"])["logger"] == "csv"


def test_constraint_syntax_errors_name_the_setting(toy_plugin, monkeypatch, tmp_path):
    """A malformed constraint in a settings class is an error naming its owner and key."""
    from cosmobench import constraints as K
    for bad in ("positve int", "int >= x", "list[int", "str > 3", "", 5):
        with pytest.raises(ValueError, match="constraint"):
            K.parse(bad)
    (tmp_path / "cb_badcheck.py").write_text(
        "from dataclasses import dataclass\nfrom cosmobench.settings import setting\n\n\n@dataclass\n"
        "class Bad:\n    k: float = setting(0.5, 'positve float')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = toy_plugin.get_task("toy")
    monkeypatch.setitem(spec.own_models, "linear", "cb_badcheck:Bad")
    with pytest.raises(ValueError, match="cb_badcheck:Bad: constraint of 'model.k'"):
        C.resolve("toy", "linear")
    k = K.parse("0 < float <= 1 or null")
    assert k.ok(1) and k.ok(None) and not k.ok(0) and not k.ok(True)
    w = K.parse([1, 2])
    assert w.ok(2) and not w.ok(2.0) and not w.ok("2")


def test_env_does_not_leak_into_saved_config(root, monkeypatch):
    """No config key is filled from the environment: the resolved config is the same with
    and without unrelated variables set."""
    a = C.resolve("photoz", "knn")
    monkeypatch.setenv("WANDB_PROJECT", "secret-project")
    monkeypatch.setenv("COSMOBENCH_HOME", str(root))
    assert C.resolve("photoz", "knn") == a
    assert "secret-project" not in C.to_yaml(a) and os.environ["WANDB_PROJECT"] == "secret-project"
