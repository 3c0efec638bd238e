"""``cosmobench predict``: apply a trained model (or a baseline that needs no fitting) to a
user file and write one output row per input item (or the task's own outputs)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from cosmobench import config as C
from cosmobench.checkpoints import check_data_matches, checkpoint_config, load_classes, load_module
from cosmobench.errors import ConfigError, InputError
from cosmobench.registry import get_task


def predict(task: str, checkpoint: str | Path | None, input_path: str | Path | None, output_path: str | Path,
            model: str | None = None, overrides: Iterable[str] = (), overwrite: bool = False,
            precision: str = "auto", compile: bool = False) -> Path:
    """Apply a trained model (or a baseline that needs no fitting) to a user file; write a table.

    The run's ``config.yaml`` next to the checkpoint supplies the data settings (column
    names ...); ``overrides`` change them. ``input_path`` None: the config's ``data.input``
    (a task that has it, e.g. deblending with ``data.dataset=hsc-blends``). Output format follows the extension (see
    :mod:`cosmobench.io`: CSV, ECSV, FITS, Parquet, NPZ, HDF5); a ``(B, K)`` output column
    is written as ``column_0..column_{K-1}``. Every file (the table and the task's companion
    files, :meth:`cosmobench.task.BaseTask.predict_files`) is checked before anything is
    read or written and they are written as one set (:func:`cosmobench.io.write_set`); an
    existing file is replaced only with ``overwrite=True``. The checkpoint is read with
    ``weights_only=True``. ``precision`` (``auto``, ``bf16``, ``fp32``) is the network's
    compute precision where the task implements a fast inference path
    (:meth:`cosmobench.task.BaseTask.inference_autocast`; ``auto``: bfloat16 on a CPU with
    native bfloat16). ``compile`` compiles that network with ``torch.compile``
    (:meth:`cosmobench.task.BaseTask.set_inference_compile`; worth it for large inputs).
    Once the model and the input are loaded, one line on stderr says the computation starts.
    Ctrl-C or SIGTERM (:mod:`cosmobench.signals`) stops it with nothing written.
    """
    import sys

    import numpy as np
    import torch

    from cosmobench.io import WRITE_SUFFIXES, WriteSet, write_set, write_table
    from cosmobench.task import INFERENCE_PRECISIONS

    if precision not in INFERENCE_PRECISIONS:
        raise ConfigError(f"--precision {precision!r} is not known; choose one of {', '.join(INFERENCE_PRECISIONS)}")

    spec = get_task(task)
    out = Path(output_path).expanduser()
    if out.is_dir():
        raise ConfigError(f"--output {out} is a directory: name the output file")
    if out.exists() and not overwrite:
        raise ConfigError(f"--output {out} exists: pass --overwrite to replace it")
    if input_path is not None and not Path(input_path).is_file():
        raise InputError(f"input file not found: {input_path}")
    dm_cls, task_cls = load_classes(spec)
    suffixes = WRITE_SUFFIXES + tuple(task_cls.extra_predict_suffixes)
    if not out.name.lower().endswith(suffixes):
        raise ConfigError(f"--output {out}: use a file ending in one of {', '.join(suffixes)}")
    files = task_cls.predict_files(out)
    WriteSet(files, overwrite)  # every file checked before anything is read or written
    if checkpoint is not None:
        cfg, ckpt = checkpoint_config(task, checkpoint, model, overrides)
        module = load_module(task_cls, task, ckpt, cfg)
        check_data_matches(dm_cls, cfg, module.data_info, ckpt)
    else:
        cfg = C.resolve(task, model, overrides=overrides)
        name = cfg["model"]["name"]
        try:  # only a baseline that needs neither training nor data statistics works without one
            module = task_cls(model=cfg["model"], optim=cfg["optim"], data_info={}, evaluation=cfg.get("eval"))
        except ConfigError:
            module = None
        if module is None or not module.is_baseline or not module.net.fitted:
            raise ConfigError(f"model {name!r} of task {task!r} is trained or fitted on a training split: "
                              f"pass --checkpoint CKPT from a `cosmobench train {task} -m {name}` run")
    if input_path is None:
        input_path = cfg["data"]["input"] if "input" in cfg["data"] else None
        if input_path is None:
            raise ConfigError(f"predict {task}: give --input FILE (the config names no data.input)")
    if not Path(input_path).is_file():
        raise InputError(f"input file not found: {input_path}")
    if Path(input_path).expanduser().resolve() in {f.expanduser().resolve() for f in files}:
        raise ConfigError(f"--output {out}: predict would overwrite its input {input_path}")
    dm = dm_cls(cfg["data"], seed=cfg["seed"])
    module.eval()
    module.set_inference_precision(precision)
    module.set_inference_compile(compile)
    loader = dm.predict_loader(input_path)
    print(f"predict: {task}/{cfg['model']['name']} on {input_path} -> {out}", file=sys.stderr, flush=True)
    with torch.no_grad(), write_set(files, overwrite):  # a task may write its own outputs (write_predictions)
        if module.write_predictions(loader, out) is not None:
            return out
    columns: dict[str, list] = {}
    with torch.no_grad():
        for batch in loader:
            for k, v in module.predict_outputs(batch).items():
                columns.setdefault(k, []).append(v.detach().cpu().numpy())
    if not columns:
        raise InputError(f"input {input_path} holds no rows to predict")
    table = {}
    for k, parts in columns.items():
        arr = np.concatenate(parts)
        if arr.ndim == 1:
            table[k] = arr
        else:
            for j in range(arr.shape[1]):
                table[f"{k}_{j}"] = arr[:, j]
    with write_set(files, overwrite):
        write_table(table, out)
    return out
