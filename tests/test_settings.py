"""One declaration per setting: the static reader, uniqueness, use, derived docs, cheap validation."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cosmobench import config as C
from cosmobench import settings as S
from cosmobench.errors import ConfigError
from cosmobench.registry import list_tasks, load_ref

REPO = Path(__file__).resolve().parents[1]
CODE = [p for d in ("cosmobench", "tasks", "datamodules") for p in (REPO / d).rglob("*.py")]


def _all_refs():
    refs = set(C.COMMON_SETTINGS.values())
    for spec in list_tasks():
        refs.add(spec.data)
        if spec.evaluation:
            refs.add(spec.evaluation)
        for model_refs in spec.models.values():
            refs.update(model_refs)
    return sorted(refs)


@pytest.mark.parametrize("ref", _all_refs())
def test_static_reader_agrees_with_the_dataclass(ref):
    """What validation reads from source (no import) is what the code gets at run time."""
    static, runtime = S.declared(ref), S.runtime_declared(load_ref(ref))
    assert list(static) == list(runtime) or set(static) == set(runtime)
    for name, s in static.items():
        r = runtime[name]
        assert (s.default, s.check, s.unit, s.help, s.owner) == (r.default, r.check, r.unit, r.help, r.owner), name


@pytest.mark.parametrize("ref", _all_refs())
def test_no_settings_class_redeclares_a_key_of_its_bases(ref):
    cls = load_ref(ref)
    owners: dict[str, list[str]] = {}
    for c in cls.__mro__:
        for name in c.__dict__.get("__annotations__", {}):
            owners.setdefault(name, []).append(c.__qualname__)
    assert {k: v for k, v in owners.items() if len(v) > 1} == {}


def test_every_key_has_exactly_one_declaration():
    """Per (task, model): no key is declared by two owners (declared_settings raises), and
    every key of the resolved config is declared or a Trainer argument."""
    for spec in list_tasks():
        for model in spec.models:
            declared = C.declared_settings(spec, model)
            cfg = C.resolve(spec.name, model)
            flat = {}

            def walk(node, prefix=""):
                for k, v in node.items():
                    if isinstance(v, dict) and k not in ("trainer",) and not prefix.startswith("trainer"):
                        walk(v, f"{prefix}{k}.")
                    else:
                        flat[f"{prefix}{k}"] = v
            walk(cfg)
            undeclared = {k for k in flat if k not in declared and k not in ("task", "model.name", "trainer")}
            assert undeclared == set(), (spec.name, model)


def _uses(name: str, declaration: str) -> bool:
    pattern = re.compile(rf"""\[\s*["']{name}["']\s*\]|\.{name}\b|["']{name}["']|\b{name}\s*=(?!=)""")
    for path in CODE:
        for line in path.read_text(encoding="utf-8").splitlines():
            if pattern.search(line) and not re.match(rf"\s*{name}\s*:.*=\s*setting\(", line) and line != declaration:
                return True
    return False


def test_every_declared_key_is_read_somewhere():
    unused = []
    for ref in _all_refs():
        for name, s in S.declared(ref).items():
            if not _uses(name, ""):
                unused.append(f"{s.owner}.{name}")
    assert unused == []


def test_annotation_checks():
    assert S.check_from_annotation("int") == "int"
    assert S.check_from_annotation("float | None") == "float or null"
    assert S.check_from_annotation("list[float]") == "list[float]"
    assert S.check_from_annotation("Literal['a', 'b']") == ["a", "b"]
    assert S.check_from_annotation("Optional[int]") == "int or null"
    assert S.check_from_annotation("Any") is None


def _module(tmp_path, monkeypatch, name, body):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))


def test_reader_follows_bases_and_constants_and_rejects_non_literals(tmp_path, monkeypatch):
    _module(tmp_path, monkeypatch, "cb_base", """
        from dataclasses import dataclass, field
        from cosmobench.settings import setting
        BANDS = ("g", "r")

        @dataclass
        class Base:
            a: int = setting(1, "positive int", unit="px", help="side")
    """)
    _module(tmp_path, monkeypatch, "cb_child", """
        from dataclasses import dataclass, field
        from cosmobench.settings import setting
        from cb_base import Base, BANDS
        import math

        @dataclass
        class Child(Base):
            bands: list[str] = setting(list(BANDS), help="filters")
            b: float | None = None
            cache: dict = field(init=False, default=None)

        @dataclass
        class Bad:
            c: float = setting(math.pi)
    """)
    with pytest.raises(ValueError, match="literals"):
        S.declared("cb_child:Bad")
    _module(tmp_path, monkeypatch, "cb_child2", """
        from dataclasses import dataclass
        from cosmobench.settings import setting
        from cb_base import Base, BANDS

        @dataclass
        class Child(Base):
            bands: list[str] = setting(BANDS, help="filters")
            b: float | None = None
    """)
    got = S.declared("cb_child2:Child")
    assert list(got) == ["a", "bands", "b"]
    assert got["a"].check == "positive int" and got["a"].unit == "px" and got["a"].owner == "cb_base:Base"
    assert got["bands"].default == ["g", "r"] and got["bands"].check == "list[str]"
    assert got["b"].check == "float or null"
    import cb_child2
    assert S.runtime_declared(cb_child2.Child) == got


def test_a_key_declared_twice_is_an_error(toy_plugin, monkeypatch, tmp_path):
    """A task's recipe for its networks may not declare a key its networks declare."""
    _module(tmp_path, monkeypatch, "cb_twice", """
        from dataclasses import dataclass
        from cosmobench.settings import setting

        @dataclass
        class Recipe:
            hidden: int = setting(3, "positive int")
    """)
    spec = toy_plugin.get_task("toy")
    monkeypatch.setattr(spec, "nets", "tabular_density")
    monkeypatch.setattr(spec, "net_settings", "cb_twice:Recipe")
    with pytest.raises(ValueError, match="model.hidden is declared twice, by cosmobench.nn.mdn:MDNConfig"):
        C.declared_settings(spec, "mdn")


def test_renamed_key_of_an_old_config_moves_with_a_warning(toy_plugin, monkeypatch, caplog):
    spec = toy_plugin.get_task("toy")
    monkeypatch.setattr(spec, "renamed", {"data.noise_sigma": "data.noise"})
    cfg = C.resolve("toy", "linear", overrides=["data.noise_sigma=0.25"])
    assert cfg["data"]["noise"] == 0.25 and "noise_sigma" not in cfg["data"]
    assert "data.noise_sigma is now data.noise" in caplog.text
    with pytest.raises(ConfigError, match="data.noise"):
        C.resolve("toy", "linear", overrides=["data.noise_sigma=-1"])


def test_docs_key_tables_are_generated_from_the_code():
    """docs/tasks/*.md and docs/guide.md hold the tables python -m cosmobench.docgen writes (in a
    fresh interpreter, as a user runs it: networks that other tests register stay out of it)."""
    out = subprocess.run([sys.executable, "-m", "cosmobench.docgen", "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_validation_and_print_config_import_no_torch(tmp_path):
    """Resolving a config (valid or with a mistyped key) and --print-config read declarations
    from source and the cached Trainer signature: no torch, no Lightning."""
    env = {**os.environ, "COSMOBENCH_CACHE": str(tmp_path / "cache"), "COSMOBENCH_HOME": str(tmp_path / "runs")}
    warm = subprocess.run([sys.executable, "-c", "from cosmobench.config import resolve; resolve('photoz')"],
                          env=env, capture_output=True, text=True)
    assert warm.returncode == 0, warm.stderr
    assert list((tmp_path / "cache" / "schema").glob("trainer-signature-*.json"))
    code = textwrap.dedent("""
        import sys
        from cosmobench.cli import main
        for argv in (["train", "photoz", "--print-config"], ["train", "photoz", "trainer.max_epochz=1"],
                     ["train", "sbi", "-m", "nle", "--print-config"]):
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code
            print("rc", argv[-1], rc)
        heavy = [m for m in ("torch", "pytorch_lightning", "lightning") if m in sys.modules]
        print("heavy", heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "rc --print-config 0" in out.stdout and "rc trainer.max_epochz=1 2" in out.stdout, out.stdout + out.stderr
    assert "did you mean 'trainer.max_epochs'" in out.stderr
    assert "heavy []" in out.stdout, out.stdout


OLD_CONFIGS = sorted((REPO / "tests" / "fixtures" / "old_configs").glob("*.yaml"))


def _flat(node, prefix=""):
    out = {}
    for k, v in node.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.mark.parametrize("path", OLD_CONFIGS, ids=[p.stem for p in OLD_CONFIGS])
def test_a_run_config_from_before_the_refactor_loads_and_the_defaults_are_unchanged(path):
    """The resolved config.yaml of every (task, model) at commit 8bef67a still loads (moved keys
    renamed, removed ones dropped), and resolving today without it gives the same value for
    every key that still exists: one declaration per setting changed no default."""
    from cosmobench.checkpoints import _user_layer
    from cosmobench.registry import get_task
    old = C.load_yaml(path)
    task, model = old["task"], old["model"]["name"]
    C.resolve(task, model, extra_layers=[(str(path), _user_layer(old))])
    renamed = get_task(task).renamed
    new = _flat(C.resolve(task, model))
    changed = {}
    for key, value in _flat(old).items():
        key = renamed.get(key, key)
        if key in new and new[key] != value:
            changed[key] = (value, new[key])
    assert changed == {}
