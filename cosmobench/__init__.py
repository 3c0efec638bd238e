"""cosmobench: benchmark and experiment framework for machine learning in cosmology.

Python API::

    import cosmobench
    result = cosmobench.train("photoz", model="mdn", overrides=["trainer.max_epochs=3"])
    result.metrics, result.run_dir
"""
__version__ = "0.1.0"


def train(task: str, model: str | None = None, overrides=(), config_file=None, root=None):
    """Fit, test and record one run; returns a :class:`cosmobench.runner.RunResult`."""
    from cosmobench.runner import train as _train
    return _train(task, model=model, overrides=overrides, config_file=config_file, root=root)


__all__ = ["train", "__version__"]
