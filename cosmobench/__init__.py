"""cosmobench: benchmark and experiment framework for machine learning in cosmology.

Python API::

    import cosmobench
    result = cosmobench.train("photoz", model="mdn", overrides=["trainer.max_epochs=3"])
    result.metrics, result.run_dir
    scored = cosmobench.test("photoz", checkpoint=result.run_dir / "checkpoints" / "best.ckpt",
                             overrides=["data.source=catalog", "data.path=cat.fits"])
"""
__version__ = "0.1.0"


def train(task: str, model: str | None = None, overrides=(), config_file=None, root=None):
    """Fit, test and record one run; returns a :class:`cosmobench.runner.RunResult`."""
    from cosmobench.runner import train as _train
    return _train(task, model=model, overrides=overrides, config_file=config_file, root=root)


def test(task: str, checkpoint, model: str | None = None, overrides=(), config_file=None, root=None):
    """Score a trained checkpoint on the test split of a datamodule (e.g. ``overrides=
    ["data.source=catalog", "data.path=cat.fits"]``) and record a row; returns a
    :class:`cosmobench.runner.RunResult`. (Import it as ``cosmobench.test``: a bare
    ``test`` name in a pytest module would be collected as a test.)"""
    from cosmobench.runner import test as _test
    return _test(task, checkpoint, model=model, overrides=overrides, config_file=config_file, root=root)


__all__ = ["train", "test", "__version__"]
