"""sbi predict's side file: the corner PNG is named from the full output stem, declared in
the task's predict_files (checked before anything is written) and written in the same atomic
set as the samples table: a failed or interrupted predict leaves neither file, nor a
temporary one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cosmobench import io as cio
from cosmobench.errors import ConfigError, InputError
from cosmobench.io import WriteSet, write_set
from cosmobench.tasks.sbi import SBITask


class _Fake:
    """Just what SBITask.write_predictions uses of the task."""

    param_names = ["a", "b"]
    model_name = "npe"
    predict_files = SBITask.predict_files

    def __init__(self, fail_at: int | None = None, exc: type[BaseException] = InputError):
        self.fail_at, self.exc, self.calls = fail_at, exc, 0

    def predict_outputs(self, batch):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise self.exc("stop")
        g = torch.Generator().manual_seed(self.calls)
        return {"a": torch.randn(60, generator=g), "b": torch.randn(60, generator=g),
                "observation": torch.full((60,), self.calls - 1, dtype=torch.long)}


def files_in(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_corner_png_is_named_from_the_full_stem_and_written_with_the_table(tmp_path):
    out = tmp_path / "run.v1.csv"
    files = SBITask.predict_files(out)
    assert files == [out, tmp_path / "run.v1_corner.png"]
    with write_set(files):
        written = SBITask.write_predictions(_Fake(), [0, 1], out)
    assert written == files and files_in(tmp_path) == ["run.v1.csv", "run.v1_corner.png"]
    assert files[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(out.read_text().splitlines()) == 1 + 120
    (tmp_path / "run.v1_corner.png").unlink()  # another output's companion is not this one's
    with pytest.raises(ConfigError, match="exists"):
        WriteSet(SBITask.predict_files(out), overwrite=False)
    out.unlink()
    files[1].write_bytes(b"old")
    with pytest.raises(ConfigError, match="run.v1_corner.png"):  # an existing PNG alone is refused too
        WriteSet(SBITask.predict_files(out), overwrite=False)


@pytest.mark.parametrize("exc", [InputError, KeyboardInterrupt])
def test_failed_or_interrupted_predict_leaves_no_file(tmp_path, exc):
    out = tmp_path / "samples.csv"
    with pytest.raises(exc):
        with write_set(SBITask.predict_files(out)):
            SBITask.write_predictions(_Fake(fail_at=2, exc=exc), [0, 1, 2], out)
    assert files_in(tmp_path) == []


def test_table_failure_after_the_png_leaves_no_png(tmp_path, monkeypatch):
    out = tmp_path / "samples.csv"

    def broken(*a, **kw):
        raise OSError("disk full")
    monkeypatch.setattr(cio, "write_table", broken)
    with pytest.raises(OSError):
        with write_set(SBITask.predict_files(out)):
            SBITask.write_predictions(_Fake(), [0], out)
    assert files_in(tmp_path) == []


def test_old_files_survive_a_failed_overwrite(tmp_path):
    out = tmp_path / "samples.csv"
    png = tmp_path / "samples_corner.png"
    out.write_text("old table\n")
    png.write_bytes(b"old png")
    with pytest.raises(InputError):
        with write_set(SBITask.predict_files(out), overwrite=True):
            SBITask.write_predictions(_Fake(fail_at=2), [0, 1], out)
    assert out.read_text() == "old table\n" and png.read_bytes() == b"old png"
    assert files_in(tmp_path) == ["samples.csv", "samples_corner.png"]
    np.testing.assert_equal(len(list(tmp_path.glob("*.tmp*"))), 0)
