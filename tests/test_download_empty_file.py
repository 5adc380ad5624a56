"""A registry file of size 0 is a valid file: fetched, verified (the hash of no bytes), recorded,
and found present by a rerun; with a cache too."""

from __future__ import annotations

import json

from helpers_http import events, one_model, run_downloader, server  # noqa: F401


def test_zero_byte_file_is_fetched_verified_and_recorded(tmp_path, server):
    reg, out = one_model(tmp_path, server, {"empty.txt": b"", "w.bin": b"\1" * 100})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0, proc.stderr
    folder = out / "public" / "m1"
    assert (folder / "empty.txt").is_file() and (folder / "empty.txt").stat().st_size == 0
    assert not (folder / "empty.txt.part").exists()
    assert len(server.requests_for("/m1/empty.txt")) == 1
    record = json.loads((folder / ".omz_verified.json").read_text())
    assert record["files"]["empty.txt"]["state"] == "verified"
    rerun = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--progress_format", "json")
    assert rerun.returncode == 0, rerun.stderr
    assert len(server.requests_for("/m1/empty.txt")) == 1
    summary = [e for e in events(rerun.stdout) if e["$type"] == "download_summary"][0]
    assert summary["files_present"] == 2


def test_zero_byte_file_through_a_cache(tmp_path, server):
    reg, out = one_model(tmp_path, server, {"empty.txt": b""})
    cache = tmp_path / "cache"
    assert run_downloader("--registry", reg, "--name", "m1", "-o", out, "--cache_dir", cache).returncode == 0
    other = tmp_path / "other"
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", other, "--cache_dir", cache, "--offline")
    assert proc.returncode == 0, proc.stderr
    assert (other / "public" / "m1" / "empty.txt").read_bytes() == b""
    assert len(server.requests_for("/m1/empty.txt")) == 1


def test_zero_byte_file_served_with_content_wrongly_fails(tmp_path, server):
    reg, out = one_model(tmp_path, server, {"empty.txt": {"size": 0, "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                                                          "source": server.add("/m1/empty.txt", b"surprise")}})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 1
    assert not (out / "public" / "m1" / "empty.txt").exists()
