"""Config layering and validation (docs/ARCHITECTURE.md, "Configuration")."""
import pytest

from cosmobench import config as C
from cosmobench.errors import ConfigError


def test_layers_later_wins(tmp_path, toy_plugin):
    user = tmp_path / "user.yaml"
    user.write_text("optim:\n  lr: 0.5\ndata:\n  n_train: 100\n")
    cfg = C.resolve("toy", "mean", config_file=user, overrides=["data.n_train=7"])
    assert cfg["task"] == "toy" and cfg["model"]["name"] == "mean"
    assert cfg["trainer"]["max_epochs"] == 1          # model layer over task defaults
    assert cfg["data"]["noise"] == 0.1                # task default
    assert cfg["optim"]["lr"] == 0.5                  # user YAML
    assert cfg["data"]["n_train"] == 7                # dotlist beats user YAML


def test_unknown_key_names_key_and_suggests():
    with pytest.raises(ConfigError) as err:
        C.resolve("photoz", overrides=["trainer.max_epochz=2"])
    assert "trainer.max_epochz" in str(err.value) and "max_epochs" in str(err.value)


def test_unknown_key_in_yaml_names_file(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"optim.learning_rate.*x.yaml.*did you mean 'optim.lr'"):
        C.resolve("photoz", config_file=f)


@pytest.mark.parametrize("override,needle", [
    ("trainer.max_epochs=abc", r"trainer.max_epochs='abc' .*must be int >= -1 or null"),
    ("seed=1.5", r"seed=1.5 .*must be int >= 0"),
    ("trainer.fast_dev_run=-3", "must be bool or int >= 0"),
    ("optim.lr=-1", r"optim.lr=-1 .*must be float > 0"),
    ("logger=mlflow", r"logger='mlflow' .*one of wandb, csv, tensorboard, none"),
    ("early_stopping=3", "expects dict"),                      # a group is not a value
    ("model.name=knn", "-m MODEL"),
    ("task=morphology", "task"),
    ("trainer", "key=value"),
])
def test_bad_values_are_errors(override, needle):
    with pytest.raises(ConfigError, match=needle):
        C.resolve("photoz", "mdn", overrides=[override])


def test_unknown_model_and_task():
    with pytest.raises(ConfigError, match="no model 'nope'.*mdn"):
        C.resolve("photoz", "nope")
    with pytest.raises(ConfigError, match="unknown task 'nope'.*photoz"):
        C.resolve("nope")


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        C.resolve("photoz", config_file=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        C.resolve("photoz", config_file=bad)


def test_parse_value():
    assert C.parse_value("1e-3") == 1e-3 and C.parse_value("3") == 3
    assert C.parse_value("true") is True and C.parse_value("null") is None
    assert C.parse_value("[a,b]") == ["a", "b"] and C.parse_value("ddp") == "ddp"
    assert C.parse_value("nan") == "nan"  # never a float NaN from the command line


def test_int_accepted_for_float_and_lists():
    cfg = C.resolve("photoz", "mdn", overrides=["optim.lr=1", "data.mag_columns=[A,B,C,D,E]"])
    assert cfg["optim"]["lr"] == 1 and cfg["data"]["mag_columns"] == ["A", "B", "C", "D", "E"]


def test_experiment_hash_ignores_bookkeeping_only():
    a = C.resolve("photoz", "mdn", overrides=["seed=0", "logger=none"])
    b = C.resolve("photoz", "mdn", overrides=["seed=3", "logger=csv"])
    c = C.resolve("photoz", "mdn", overrides=["optim.lr=0.1"])
    h = lambda cfg: C.config_hash(cfg, C.BOOKKEEPING_KEYS)  # noqa: E731
    assert h(a) == h(b) != h(c)
    assert C.config_hash(a) != C.config_hash(b)


def test_omegaconf_interpolation(tmp_path):
    f = tmp_path / "i.yaml"
    f.write_text("data:\n  n_val: ${data.n_test}\n")
    cfg = C.resolve("photoz", "mdn", config_file=f, overrides=["data.n_test=123"])
    assert cfg["data"]["n_val"] == 123
    with pytest.raises(ConfigError, match="interpolation"):
        C.resolve("photoz", "mdn", overrides=["data.path=${data.nope}"])
