"""cosmobench.datasets: registry consistency, and the real download path (pooch) against a
local HTTP server serving generated files: good, corrupted, 404 primary with a working mirror,
transfers cut short, offline with and without a cache, verify, and the data commands. No
network: every URL of the fixture entries is http://127.0.0.1:<random port>/."""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cosmobench.datasets import (DATASETS, DataFile, Dataset, cache_state, data_home, fetch, get_dataset,
                                 git_blob_id, loader_config, local_path, provenance, register_dataset, require,
                                 unregister_dataset, verify)
from cosmobench.datasets import catalog
from cosmobench.datasets import cli as data_cli
from cosmobench.errors import ConfigError, InputError

GOOD = bytes(range(256)) * 64  # 16 kB
OTHER = b"col_a,col_b\n1,2\n3,4\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# --------------------------------------------------------------------------- local server

class _Handler(BaseHTTPRequestHandler):
    routes: dict = {}
    hits: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        self.hits.append(self.path)
        kind, body = self.routes.get(self.path, ("404", b""))
        if kind == "404":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind == "truncated":  # announce the whole file, send a third, hang up
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class LocalServer:
    def __init__(self, routes: dict):
        handler = type("Handler", (_Handler,), {"routes": routes, "hits": []})
        self.handler = handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def hits(self) -> list:
        return self.handler.hits

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server():
    s = LocalServer({
        "/good.bin": ("ok", GOOD),
        "/other.csv": ("ok", OTHER),
        "/corrupt.bin": ("ok", GOOD[:-1] + b"\x00"),  # one byte changed: same size, wrong hash
        "/truncated.bin": ("truncated", GOOD),
        "/mirror/good.bin": ("ok", GOOD),
    })
    yield s
    s.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("COSMOBENCH_DATA", str(root))
    return root


@pytest.fixture
def register():
    added = []

    def add(name, files, **kw):
        kw = {"task": "photoz", "description": f"test set {name}", "licence": "CC-BY-4.0",
              "licence_url": "https://example.invalid/licence", "citation_key": "Test2026",
              "citation": "@misc{Test2026, title={t}}", "loader": {"source": "catalog", "path": files[0].name}, **kw}
        ds = register_dataset(Dataset(name=name, files=tuple(files), **kw), replace=True)
        added.append(name)
        return ds

    yield add
    for n in added:
        unregister_dataset(n)


def dfile(name, urls, data=GOOD, **kw) -> DataFile:
    kw.setdefault("sha256", sha(data))
    kw.setdefault("size", len(data))
    kw.setdefault("provenance", "sha256 computed from the generated fixture")
    return DataFile(name, tuple(urls), **kw)


def leftovers(root: Path) -> list[str]:
    """Every file below the cache root (temporary directories included)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def quiet(msg):
    pass


# --------------------------------------------------------------------------- download path

def test_good_file_fetched_verified_and_recorded(server, cache, register):
    ds = register("t-good", [dfile("good.bin", [f"{server.url}/good.bin"]),
                             dfile("sub/other.csv", [f"{server.url}/other.csv"], OTHER)])
    report = fetch(ds, progress=False, say=quiet)
    assert report.downloaded == ["good.bin", "sub/other.csv"]
    assert local_path(ds, "good.bin").read_bytes() == GOOD
    assert (cache / "t-good" / "sub" / "other.csv").read_bytes() == OTHER
    assert leftovers(cache) == ["t-good/.cosmobench.json", "t-good/good.bin", "t-good/sub/other.csv"]
    assert cache_state(ds) == "cached"
    assert [r.status for r in verify(["t-good"])] == ["ok", "ok"]
    prov = provenance(ds)
    assert prov["files"]["good.bin"]["sha256"] == sha(GOOD)
    assert prov["files"]["good.bin"]["url"] == f"{server.url}/good.bin"
    assert loader_config(ds)["path"] == str(cache / "t-good" / "good.bin")
    n = len(server.hits)
    assert fetch(ds, progress=False, say=quiet).already == ["good.bin", "sub/other.csv"]
    assert len(server.hits) == n  # cached files: no request at all


def test_corrupt_file_is_exit_2_and_leaves_nothing(server, cache, register, capsys):
    register("t-corrupt", [dfile("good.bin", [f"{server.url}/corrupt.bin"])])
    with pytest.raises(InputError, match="hash mismatch for good.bin, nothing was written") as exc:
        fetch("t-corrupt", progress=False, say=quiet)
    assert "\n" not in str(exc.value) and f"expected {sha(GOOD)}" in str(exc.value)
    assert leftovers(cache) == [] and not (cache / "t-corrupt").exists()
    assert data_cli.main(["fetch", "t-corrupt", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cosmobench: error: t-corrupt: hash mismatch")
    assert leftovers(cache) == []


def test_404_primary_falls_back_to_mirror(server, cache, register):
    ds = register("t-mirror", [dfile("good.bin", [f"{server.url}/gone/good.bin", f"{server.url}/mirror/good.bin"])])
    said = []
    fetch(ds, progress=False, say=said.append)
    assert local_path(ds, "good.bin").read_bytes() == GOOD
    assert server.hits == ["/gone/good.bin", "/mirror/good.bin"]
    assert any("HTTP 404; trying the next mirror" in s for s in said)
    assert provenance(ds)["files"]["good.bin"]["url"].endswith("/mirror/good.bin")


def test_corrupt_primary_falls_back_to_good_mirror(server, cache, register):
    ds = register("t-mirror2", [dfile("good.bin", [f"{server.url}/corrupt.bin", f"{server.url}/good.bin"])])
    fetch(ds, progress=False, say=quiet)
    assert local_path(ds, "good.bin").read_bytes() == GOOD
    assert leftovers(cache) == ["t-mirror2/.cosmobench.json", "t-mirror2/good.bin"]


def test_every_url_failing_names_each(server, cache, register):
    register("t-404", [dfile("good.bin", [f"{server.url}/a", f"{server.url}/b"])])
    with pytest.raises(InputError, match=r"download failed .*/a: HTTP 404; .*/b: HTTP 404"):
        fetch("t-404", progress=False, say=quiet)
    assert leftovers(cache) == []


@pytest.mark.parametrize("check", ["sha256", "git-blob", "none"])
def test_truncated_transfer_is_a_clean_error(server, cache, register, check):
    kw = {"sha256": sha(GOOD)} if check == "sha256" else \
         {"sha256": None, "git_blob": blob_id(GOOD), "size": None} if check == "git-blob" else \
         {"sha256": None, "size": None, "provenance": "UNVERIFIED: fixture without a hash"}
    register("t-cut", [dfile("good.bin", [f"{server.url}/truncated.bin"], **kw)])
    with pytest.raises(InputError, match="t-cut: .* for good.bin, nothing was written to the cache") as exc:
        fetch("t-cut", progress=False, say=quiet)
    assert "\n" not in str(exc.value)
    assert leftovers(cache) == [] and not (cache / "t-cut").exists()


def test_server_down_is_a_clean_error(server, cache, register):
    register("t-down", [dfile("good.bin", [f"{server.url}/good.bin"])])
    server.stop()
    with pytest.raises(InputError, match="download failed for good.bin.*transfer failed"):
        fetch("t-down", progress=False, say=quiet)
    assert leftovers(cache) == []


def test_git_blob_checked_file(server, cache, register):
    ok = register("t-blob", [dfile("good.bin", [f"{server.url}/good.bin"], sha256=None, size=None,
                                   git_blob=blob_id(GOOD), provenance="git blob id of the fixture")])
    fetch(ok, progress=False, say=quiet)
    assert git_blob_id(local_path(ok, "good.bin")) == blob_id(GOOD)
    assert provenance(ok)["files"]["good.bin"]["sha256"] == sha(GOOD)  # computed at fetch, recorded
    assert [r.status for r in verify(["t-blob"])] == ["ok"]
    register("t-blob-bad", [dfile("good.bin", [f"{server.url}/corrupt.bin"], sha256=None, size=None,
                                  git_blob=blob_id(GOOD), provenance="git blob id of the fixture")])
    with pytest.raises(InputError, match="git blob id mismatch"):
        fetch("t-blob-bad", progress=False, say=quiet)
    assert not (cache / "t-blob-bad").exists()


def test_unverified_file_is_recorded_and_verified_against_the_record(server, cache, register, capsys):
    ds = register("t-unverified", [dfile("good.bin", [f"{server.url}/good.bin"], sha256=None, size=None,
                                         provenance="UNVERIFIED: the fixture has no published hash")])
    assert data_cli.main(["fetch", "t-unverified", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"UNVERIFIED: good.bin has no published hash; sha256 of the fetched file {sha(GOOD)}" in out
    assert [r.status for r in verify(["t-unverified"])] == ["ok"]
    local_path(ds, "good.bin").write_bytes(b"tampered")
    assert [r.status for r in verify(["t-unverified"])] == ["MISMATCH"]


def test_offline_with_cache_works_without_the_server(server, cache, register, capsys):
    ds = register("t-offline", [dfile("good.bin", [f"{server.url}/good.bin"])])
    fetch(ds, progress=False, say=quiet)
    server.stop()
    assert require(ds) == cache / "t-offline"
    assert fetch(ds, progress=False, say=quiet).already == ["good.bin"]
    assert data_cli.main(["path", "t-offline"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "t-offline")
    assert data_cli.main(["path", "t-offline", "--loader"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(cache / "t-offline" / "good.bin")


def test_offline_without_cache_names_the_fetch_command(cache, register, capsys):
    ds = register("t-absent", [dfile("good.bin", ["http://127.0.0.1:9/good.bin"])])
    with pytest.raises(InputError, match=r"run `cosmobench data fetch t-absent`"):
        require(ds)
    with pytest.raises(InputError, match=r"`cosmobench data fetch t-absent`"):
        loader_config(ds)
    assert data_cli.main(["path", "t-absent"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cosmobench data fetch t-absent" in err[0]
    assert leftovers(cache) == []


def test_verify_detects_a_file_corrupted_in_the_cache(server, cache, register, capsys):
    ds = register("t-verify", [dfile("good.bin", [f"{server.url}/good.bin"]),
                               dfile("other.csv", [f"{server.url}/other.csv"], OTHER)])
    fetch(ds, progress=False, say=quiet)
    assert data_cli.main(["verify"]) == 0
    assert "2 ok, 0 mismatching" in capsys.readouterr().out
    p = local_path(ds, "good.bin")
    p.write_bytes(GOOD[:-1] + b"\x01")  # same size: only the hash can tell
    assert data_cli.main(["verify", "t-verify"]) == 2
    cap = capsys.readouterr()
    assert re.search(r"MISMATCH\s+t-verify/good.bin: sha256 ", cap.out)
    assert "cosmobench data fetch t-verify --force" in cap.err and len(cap.err.strip().splitlines()) == 1
    fetch(ds, force=True, progress=False, say=quiet)  # repaired
    assert p.read_bytes() == GOOD and data_cli.main(["verify", "t-verify"]) == 0


def test_restricting_licence_is_printed_on_fetch(server, cache, register, capsys):
    register("t-nc", [dfile("good.bin", [f"{server.url}/good.bin"])], licence="CC-BY-NC-4.0",
             restriction="non-commercial use only")
    assert data_cli.main(["fetch", "t-nc", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "NOTE: the licence of t-nc restricts use: non-commercial use only" in out
    assert "1 file(s) fetched and checked (sha256)" in out


def test_progress_bar_on_fetch(server, cache, register, capsys):
    register("t-bar", [dfile("good.bin", [f"{server.url}/good.bin"])])
    assert data_cli.main(["fetch", "t-bar"]) == 0
    err = capsys.readouterr().err
    assert "good.bin" in err and "16.4k" in err  # tqdm's bar: label and byte count


# --------------------------------------------------------------------------- commands

def test_list_info_path_output(server, cache, register, capsys):
    register("t-cli", [dfile("good.bin", [f"{server.url}/good.bin", f"{server.url}/mirror/good.bin"])])
    assert data_cli.main(["list"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["name", "task", "kind", "files", "size", "licence", "citation", "cached"]
    row = next(line.split() for line in out.splitlines() if line.startswith("t-cli "))
    assert row[1] == "photoz" and row[-1] == "no" and "CC-BY-4.0" in row
    for name in ("galaxy10-decals", "teddy", "sbibm-two-moons", "hsc-blends", "kappatng-cosmos"):
        assert name in out
    assert data_cli.main(["info", "t-cli"]) == 0
    out = capsys.readouterr().out
    for text in ("licence: CC-BY-4.0", "citation (Test2026):", "@misc{Test2026", f"sha256: {sha(GOOD)}",
                 "mirror: " + f"{server.url}/mirror/good.bin", "hash provenance: sha256 computed from",
                 'loader keys (data.*): {"source": "catalog", "path": "good.bin"}', "(no)"):
        assert text in out, text
    fetch("t-cli", progress=False, say=quiet)
    assert data_cli.main(["list", "--task", "photoz"]) == 0
    row = next(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("t-cli "))
    assert row[-1] == "cached"
    assert data_cli.main(["path", "t-cli", "--file", "good.bin"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "t-cli" / "good.bin")


def test_unknown_name_is_a_config_error_with_a_suggestion(capsys):
    with pytest.raises(ConfigError, match="did you mean 'galaxy10-decals'"):
        get_dataset("galaxy10-decal")
    assert data_cli.main(["info", "galaxy10-decal"]) == 2
    assert data_cli.main(["frobnicate"]) == 2
    assert all(line.startswith("cosmobench: error:") for line in capsys.readouterr().err.strip().splitlines())


def test_hook_into_a_cosmobench_style_parser(cache, capsys):
    """The two lines the core CLI adds: add_subparser(sub) and COMMANDS["data"] = run."""
    parser = argparse.ArgumentParser(prog="cosmobench")
    sub = parser.add_subparsers(dest="command", required=True)
    data_cli.add_subparser(sub)
    commands = {"data": data_cli.run}
    args = parser.parse_args(["data", "list", "--task", "sbi"])
    assert commands[args.command](args) == 0
    assert "sbibm-slcp-distractors" in capsys.readouterr().out


def test_import_is_cheap():
    code = ("import sys, cosmobench.datasets.cli; "
            "print(sorted(m for m in ('torch', 'pooch', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- the shipped registry

def test_registry_covers_every_task_with_real_hashes():
    real = {n: d for n, d in DATASETS.items() if not n.startswith("t-")}  # t-*: this file's fixtures
    assert len(real) >= 6
    assert {d.task for d in real.values()} == set(catalog.TASKS)
    for d in real.values():
        assert d.citation_key in d.citation and d.citation.lstrip().startswith("@"), d.name
        assert d.licence and d.licence_url.startswith("https://"), d.name
        names = {f.name for f in d.files} | {f.name.rsplit("/", 1)[-1] for f in d.files}
        for key, value in d.loader.items():  # file-like loader values name files of the entry
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, str) and re.search(r"\.(fits|npz|npy|h5|cat|csv|txt)$|^(teddy|happy)T_", v):
                    assert v in names, (d.name, key, v)
        for f in d.files:
            assert all(u.startswith("https://") for u in f.urls) and len(f.urls) >= 2, (d.name, f.name)
            for u in f.urls:
                m = re.match(r"https://(raw\.githubusercontent\.com/[^/]+/[^/]+/|cdn\.jsdelivr\.net/gh/[^/]+/[^@]+@)"
                             r"([0-9a-f]+)/", u)
                assert m is None or len(m.group(2)) == 40, u  # GitHub files pinned to a commit
            if f.sha256:
                assert ("sha256 computed from the file fetched from" in f.provenance
                        or "sha256 copied from the publisher's page" in f.provenance), f.provenance
            elif f.git_blob:
                assert "git blob id" in f.provenance
            else:
                assert f.provenance.startswith("UNVERIFIED: ")
    galaxy10 = real["galaxy10-decals"].files[0]
    assert galaxy10.sha256 == "19aefc477c41bb7f77ff07599a6b82a038dc042f889a111b0d4d98bb755c1571"
    assert "copied from the publisher's page" in galaxy10.provenance
    for task in ("gaussian_linear", "gaussian_linear_uniform", "slcp", "slcp_distractors", "bernoulli_glm",
                 "bernoulli_glm_raw", "gaussian_mixture", "two_moons"):
        d = real[f"sbibm-{task.replace('_', '-')}"]
        assert len(d.files) == 30 and {f.name.split("/")[0] for f in d.files} == \
            {f"num_observation_{k}" for k in range(1, 11)}


def test_dataclass_rules():
    with pytest.raises(ValueError, match="UNVERIFIED"):
        DataFile("x", ("https://a",), None, None, "made up")
    with pytest.raises(ValueError, match="64 lower-case hex"):
        DataFile("x", ("https://a",), "ABC", 1, "computed")
    with pytest.raises(ValueError, match="relative path"):
        DataFile("../x", ("https://a",), sha(b""), 0, "computed")
    d = get_dataset("hsc-blends")
    with pytest.raises(TypeError):
        d.loader["input"] = "other"  # plain data, read-only
    assert d.size == sum(f.size for f in d.files)


def test_docs_table_lists_every_data_set():
    text = (Path(__file__).parents[1] / "docs" / "datasets.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| (\w+) \|", text, re.M)}
    shipped = {n: d.task for n, d in DATASETS.items() if not n.startswith("t-")}
    assert rows == shipped
