"""The Python API: omz_tools.download(...) returns successes and failures apart and never exits;
omz_tools.download.verified(path, model_file) is what the converter checks its inputs with."""

from __future__ import annotations

import os

import pytest

import omz_tools
from conftest import write_registry_files
from helpers_http import Fault, one_model, server, write_registry  # noqa: F401
from omz_tools.download import DownloadResult, verified
from omz_tools.registry import Registry

MiB = 1 << 20


def test_download_returns_paths_per_model(tmp_path, server):
    data = os.urandom(MiB)
    reg, out = one_model(tmp_path, server, {"a.bin": data, "b.txt": b"b"})
    result = omz_tools.download(["m1"], output_dir=out, registries=[reg], jobs=2)
    assert isinstance(result, DownloadResult) and result.ok
    assert result.failures == {}
    assert sorted(p.name for p in result.successes["m1"]) == ["a.bin", "b.txt"]
    assert (out / "public" / "m1" / "a.bin").read_bytes() == data
    again = omz_tools.download("m?", output_dir=out, registries=[reg])  # a pattern string works too
    assert again.ok and again.count("present") == 2 and again.bytes_downloaded == 0


def test_failures_are_returned_not_raised_nor_exited(tmp_path, server):
    registry = tmp_path / "reg"
    write_registry(registry, {
        "public/good": {"files": [{"name": "g", "data": b"g", "source": server.add("/g", b"g")}]},
        "public/bad": {"files": [{"name": "b", "data": b"b", "source": server.url("/nowhere")}]},
    })
    result = omz_tools.download(["good", "bad"], output_dir=tmp_path / "out", registries=[registry], num_attempts=1)
    assert not result.ok
    assert list(result.successes) == ["good"] and list(result.failures) == ["bad"]
    assert "HTTP 404" in result.failures["bad"] and server.url("/nowhere") in result.failures["bad"]


def test_retries_and_resume_through_the_api(tmp_path, server):
    data = os.urandom(2 * MiB + 3)
    reg, out = one_model(tmp_path, server, {"a.bin": data})
    server.queue_fault("/m1/a.bin", Fault("drop", after=MiB + 1))
    result = omz_tools.download(["m1"], output_dir=out, registries=[reg])
    assert result.ok and result.count("resumed") == 1
    assert result.bytes_downloaded == 2 * MiB + 3  # 1 MiB kept, then the rest


def test_bad_arguments_raise_value_error(tmp_path, server):
    reg, out = one_model(tmp_path, server, {"a": b"a"})
    with pytest.raises(ValueError):
        omz_tools.download(["m1"], output_dir=out, registries=[reg], jobs=0)
    with pytest.raises(ValueError, match="FP64"):
        omz_tools.download(["m1"], output_dir=out, registries=[reg], precisions=["FP64"])


def test_verified_trusts_the_record_and_rehashes_on_request(tmp_path, server):
    data = os.urandom(MiB)
    reg, out = one_model(tmp_path, server, {"a.bin": data})
    model_file = Registry([reg]).load("m1").files[0]
    path = out / "public" / "m1" / "a.bin"
    assert not verified(path, model_file)
    assert omz_tools.download(["m1"], output_dir=out, registries=[reg]).ok
    assert verified(path, model_file) and verified(path, model_file, full_check=True)
    stat = path.stat()
    with open(path, "r+b") as stream:
        stream.write(bytes([data[0] ^ 0xFF]))  # a byte that differs (os.urandom may start with 0)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert verified(path, model_file)  # the record still holds (same size, mtime, inode)...
    assert not verified(path, model_file, full_check=True)  # ...a full check sees the damage
    os.utime(path)
    assert not verified(path, model_file)  # a changed mtime: re-hashed, mismatch
    path.write_bytes(data)
    assert verified(path, model_file)  # no record holds: hashed, matches, recorded


def test_verified_file_without_any_record_is_hashed(tmp_path):
    from omz_tools.registry import Checksum, FileSource, ModelFile
    from pathlib import PurePosixPath
    import hashlib
    data = b"hello"
    path = tmp_path / "x.bin"
    path.write_bytes(data)
    model_file = ModelFile(PurePosixPath("x.bin"), len(data), Checksum("sha384", hashlib.sha384(data).hexdigest()),
                           FileSource("http", url="http://127.0.0.1/x"))
    assert verified(path, model_file)
    assert (tmp_path / ".omz_verified.json").exists()
    assert not verified(tmp_path / "missing.bin", model_file)


def test_composite_model_stages_are_fetched_and_reported_under_the_composite(tmp_path, server):
    registry = tmp_path / "reg"
    stages = {"comp-enc": b"encoder", "comp-dec": b"decoder"}
    write_registry(registry, {f"public/comp/{stage}": {"files": [
        {"name": f"{stage}.onnx", "data": data, "source": server.add(f"/{stage}.onnx", data)}]}
        for stage, data in stages.items()})
    write_registry_files(registry, {"public/comp/composite-model.yml": {
        "description": "two stages", "framework": "onnx", "license": "none", "task_type": "classification",
        "stages_order": list(stages)}})
    out = tmp_path / "out"
    result = omz_tools.download("comp", output_dir=out, registries=[registry])
    assert result.ok, result.failures
    assert sorted(p.name for p in result.successes["comp"]) == ["comp-dec.onnx", "comp-enc.onnx"]
    assert (out / "public" / "comp" / "comp-enc" / "comp-enc.onnx").read_bytes() == b"encoder"

    server.resources.pop("/comp-dec.onnx")
    (out / "public" / "comp" / "comp-dec" / "comp-dec.onnx").unlink()
    result = omz_tools.download("comp", output_dir=out, registries=[registry], num_attempts=1)
    assert list(result.failures) == ["comp"] and "stage comp-dec" in result.failures["comp"]
    assert result.successes == {}


def test_read_timeout_mid_body_is_retried_and_resumed(tmp_path, server, monkeypatch):
    data = os.urandom(MiB + 100)
    reg, out = one_model(tmp_path, server, {"a.bin": data})
    server.queue_fault("/m1/a.bin", Fault("trickle", after=600 * 1024, delay=2.0))  # then stalls
    result = omz_tools.download(["m1"], output_dir=out, registries=[reg], num_attempts=2,
                                timeout=(15, 0.5))
    assert result.ok, result.failures
    assert (out / "public" / "m1" / "a.bin").read_bytes() == data
    last = server.requests_for("/m1/a.bin")[-1]
    kept = int(last.headers["Range"].split("=")[1].rstrip("-"))
    # Every byte that arrived before the stall was kept: the 600 KiB and the first 1 KiB trickled.
    assert last.status == 206 and kept == 601 * 1024
