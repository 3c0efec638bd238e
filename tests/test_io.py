"""Tables through astropy: CSV/ECSV/FITS/Parquet round trips, missing values, errors, atomic writes."""
import numpy as np
import pytest

from cosmobench.errors import InputError
from cosmobench.io import numeric_column, read_table, table_format, write_table


@pytest.mark.parametrize("suffix", [".csv", ".ecsv", ".fits", ".parquet"])
def test_roundtrip(tmp_path, suffix):
    rng = np.random.default_rng(0)
    cols = {"z": rng.uniform(0, 3, 50), "mag_i": rng.normal(22, 1, 50).astype(np.float32),
            "n": np.arange(50), "name": np.array([f"g{i}" for i in range(50)])}
    p = write_table(cols, tmp_path / f"t{suffix}")
    assert p.is_file() and not list(tmp_path.glob("*.tmp"))
    back = read_table(p)
    assert list(back) == list(cols)
    np.testing.assert_array_equal(back["z"], cols["z"])  # lossless for float64, also in CSV
    np.testing.assert_array_equal(back["mag_i"], cols["mag_i"])
    np.testing.assert_array_equal(back["n"], cols["n"])
    assert [str(s) for s in back["name"]] == list(cols["name"])
    sub = read_table(p, ["mag_i"], optional=["z", "absent"])
    assert list(sub) == ["mag_i", "z"]


def test_missing_values_become_nan(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("a,b,c\n1.5,,x\n,2,y\n3,4,\n")
    t = read_table(p)
    np.testing.assert_array_equal(np.isnan(t["a"]), [False, True, False])
    np.testing.assert_array_equal(np.isnan(t["b"]), [True, False, False])  # masked ints -> NaN floats
    assert list(t["c"]) == ["x", "y", ""]
    np.testing.assert_array_equal(numeric_column(np.array(["1", "bad", " 2.5 ", ""])), [1.0, np.nan, 2.5, np.nan])


def test_read_errors_are_one_line(tmp_path):
    write_table({"a": np.arange(3.0)}, tmp_path / "t.fits")
    with pytest.raises(InputError, match=r"'b' not found in .*available columns: a"):
        read_table(tmp_path / "t.fits", ["a", "b"])
    with pytest.raises(InputError, match="unsupported table format"):
        read_table(tmp_path / "t.txt")
    with pytest.raises(InputError, match="not found"):
        read_table(tmp_path / "absent.csv")
    for name, content in (("bad.fits", "this is not a FITS file\nsecond line\n"), ("bad.parquet", "nope"),
                          ("bad.ecsv", "# %ECSV 1.0\n# ---\n# broken: [\n")):
        (tmp_path / name).write_text(content)
        with pytest.raises(InputError) as e:
            read_table(tmp_path / name)
        assert "\n" not in str(e.value) and str(tmp_path / name) in str(e.value)


def test_write_formats_and_errors(tmp_path):
    cols = {"p": np.array([0.1, 0.9]), "w": np.ones((2, 3))}
    write_table(cols, tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as z:
        assert z["w"].shape == (2, 3)
    import h5py
    write_table(cols, tmp_path / "o.h5")
    with h5py.File(tmp_path / "o.h5") as fh:
        np.testing.assert_array_equal(fh["p"][:], cols["p"])
    with pytest.raises(InputError, match="not 1-D"):
        write_table(cols, tmp_path / "o.csv")
    assert not (tmp_path / "o.csv").exists() and not list(tmp_path.glob("*.tmp"))  # nothing half-written
    with pytest.raises(InputError, match="extension"):
        write_table({"p": cols["p"]}, tmp_path / "o.txt")
    with pytest.raises(InputError, match="directory"):
        write_table({"p": cols["p"]}, tmp_path)
    with pytest.raises(InputError, match="unequal length"):
        write_table({"p": cols["p"], "q": np.ones(3)}, tmp_path / "o.fits")
    write_table({"p": cols["p"]}, tmp_path / "o.fits")
    with pytest.raises(InputError, match="exists"):
        write_table({"p": cols["p"]}, tmp_path / "o.fits", overwrite=False)
    assert table_format("x.FITS.gz") == "fits" and table_format("x.npz") is None


# --- issue 21 §2: sets of output files ---------------------------------------------------
def test_side_path_keeps_the_full_stem():
    from cosmobench.io import output_stem, side_path
    assert side_path("d/run.v1.csv", "_images.npz").name == "run.v1_images.npz"
    assert side_path("d/run.v2.csv", "_images.npz").name == "run.v2_images.npz"
    assert side_path("cat.fits.gz", "_images.fits").name == "cat_images.fits"
    assert output_stem("a.b.c.parquet") == "a.b.c" and output_stem("x.unknown") == "x"


def test_write_set_is_all_or_nothing(tmp_path):
    from cosmobench.errors import ConfigError
    from cosmobench.io import atomic_path, write_set, write_table
    out, side = tmp_path / "o.v1.csv", tmp_path / "o.v1_images.npz"
    with pytest.raises(RuntimeError, match="boom"):
        with write_set([out, side]):
            write_table({"a": np.arange(3)}, out)
            assert not out.exists()  # staged, not yet in place
            with atomic_path(side) as tmp:
                np.savez(open(tmp, "wb"), x=np.zeros(2))
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written, no temporaries
    with write_set([out, side]):
        write_table({"a": np.arange(3)}, out)
        with atomic_path(side) as tmp:
            np.savez(open(tmp, "wb"), x=np.zeros(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.v1.csv", "o.v1_images.npz"]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for paths in ([out, side], [tmp_path / "new.csv", side], [side]):  # a side file exists: refused before writing
        with pytest.raises(ConfigError, match="--overwrite"):
            with write_set(paths):
                raise AssertionError("the block must not run")
    with pytest.raises(ConfigError, match="twice"):
        write_set([out, tmp_path / "." / "o.v1.csv"], overwrite=True).__enter__()
    with pytest.raises(ConfigError, match="directory"):
        write_set([tmp_path], overwrite=True).__enter__()
    # an overwrite that fails part-way keeps the previous set
    with pytest.raises(ValueError):
        with write_set([out, side], overwrite=True):
            write_table({"a": np.arange(5)}, out)
            raise ValueError("second file failed")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
