"""A throwaway cosmobench plugin used by the tests: linear regression y = a.x + b + noise.

It is discovered through the ``cosmobench.plugins`` entry point declared in the
``toyplug-0.1.dist-info`` folder beside it (tests put that folder on PYTHONPATH).
"""
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cosmobench.datamodule import ArrayDataset, BaseDataModule, DataSettings, SimSplits, sample_rng
from cosmobench.registry import register_task
from cosmobench.settings import setting
from cosmobench.task import BaseTask, FittedBaseline

N_FEATURES = 4
COEF = np.array([1.0, -2.0, 0.5, 3.0])


def register():
    register_task(name="toy", datamodule="toyplug:ToyData", module="toyplug:ToyTask", data="toyplug:ToySettings",
                  primary_metric="mse", mode="min", description="toy linear regression (test plugin)",
                  models={"linear": None, "mean": None}, experiments="toyplug.experiments")


@dataclass
class ToySettings(DataSettings, SimSplits):
    source: str = setting("sim", ["sim"], help="the built-in simulator")
    noise: float = setting(0.1, "non-negative float", help="standard deviation of the noise on y")


class ToyData(BaseDataModule):
    def _split(self, split, n):
        rng = sample_rng(self.seed, split, 0)
        x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
        y = (x @ COEF + 0.3 + self.cfg["noise"] * rng.normal(size=n)).astype(np.float32)
        return ArrayDataset({"x": x, "y": y})

    def build(self):
        return {s: self._split(s, self.cfg[f"n_{s}"]) for s in ("train", "val", "test")}

    def info(self):
        return {"n_features": N_FEATURES}


class MeanBaseline(FittedBaseline):
    def __init__(self):
        super().__init__()
        self.mu = torch.zeros(())

    def fit(self, data):
        self.mu = torch.tensor(float(data["y"].mean()))

    def state(self):
        return {"mu": self.mu}

    def load_state(self, state):
        self.mu = state["mu"]

    def forward(self, x):
        return self.mu.expand(len(x))


class ToyTask(BaseTask):
    def configure_model(self):
        if self.model_name == "linear":
            return nn.Linear(self.data_info["n_features"], 1)
        if self.model_name == "mean":
            return MeanBaseline()
        raise self.unknown_model()

    def _pred(self, batch):
        out = self.net(batch["x"])
        return out.squeeze(-1) if out.ndim == 2 else out

    def loss(self, batch):
        return ((self._pred(batch) - batch["y"]) ** 2).mean()

    def test_outputs(self, batch):
        return {"pred": self._pred(batch), "y": batch["y"]}

    def compute_metrics(self, out):
        return {"mse": float(np.mean((out["pred"] - out["y"]) ** 2)), "n_test": float(len(out["y"]))}

    def predict_outputs(self, batch):
        return {"y_pred": self._pred(batch)}
