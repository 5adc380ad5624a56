"""unpack_archive within bounds: an archive whose members declare more than OMZ_UNPACK_MAX_SIZE
bytes, or more than OMZ_UNPACK_MAX_RATIO times the archive's size (a decompression bomb), is
refused before anything is written; the space it needs is checked before writing; a member named
like the archive itself is refused instead of being deleted as "the archive"."""

from __future__ import annotations

import io
import os
import random
import tarfile
import zipfile

import pytest

from helpers_http import events, one_model, run_downloader, server  # noqa: F401

MiB = 1 << 20


def _zip(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _tgz(members: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _model(tmp_path, server, archive: bytes, fmt: str, name: str = "pack.arc"):
    return one_model(tmp_path, server, {name: archive}, postprocessing=[
        {"$type": "unpack_archive", "file": name, "format": fmt}])


def _env(**values) -> dict:
    env = dict(os.environ)
    for key in ("OMZ_UNPACK_MAX_SIZE", "OMZ_UNPACK_MAX_RATIO"):
        env.pop(key, None)
    env.update(values)
    return env


@pytest.mark.parametrize("fmt, pack", [("zip", _zip), ("gztar", _tgz)])
def test_a_decompression_bomb_is_refused_before_anything_is_written(tmp_path, server, fmt, pack):
    archive = pack({"zeros.bin": bytes(32 * MiB), "fine.txt": b"ok"})  # ~1000 times its size
    assert len(archive) < 200_000
    reg, out = _model(tmp_path, server, archive, fmt)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, env=_env())
    assert proc.returncode == 1, proc.stderr
    assert "refused to unpack" in proc.stderr and "OMZ_UNPACK_MAX_RATIO" in proc.stderr
    assert "Traceback" not in proc.stderr
    folder = out / "public" / "m1"
    assert not (folder / "zeros.bin").exists() and not (folder / "fine.txt").exists()
    assert (folder / "pack.arc").exists() and not list(folder.glob(".*unpacking*"))
    # The bound is settable: the same archive with a higher ratio is unpacked.
    again = run_downloader("--registry", reg, "--name", "m1", "-o", out, env=_env(OMZ_UNPACK_MAX_RATIO="5000"))
    assert again.returncode == 0, again.stderr
    assert (folder / "zeros.bin").stat().st_size == 32 * MiB


def test_declared_total_size_beyond_the_bound_is_refused(tmp_path, server):
    data = random.Random(1).randbytes(2 * MiB)  # incompressible: the ratio is about 1
    reg, out = _model(tmp_path, server, _tgz({"w.bin": data}), "gztar")
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--progress_format", "json",
                          env=_env(OMZ_UNPACK_MAX_SIZE="1M"))
    assert proc.returncode == 1
    errors = [e["message"] for e in events(proc.stdout) if e["$type"] == "model_download_error"]
    assert errors and "refused to unpack" in errors[0] and "OMZ_UNPACK_MAX_SIZE" in errors[0], errors
    assert not (out / "public" / "m1" / "w.bin").exists()
    ok = run_downloader("--registry", reg, "--name", "m1", "-o", out, env=_env(OMZ_UNPACK_MAX_SIZE="3M"))
    assert ok.returncode == 0, ok.stderr
    assert (out / "public" / "m1" / "w.bin").read_bytes() == data


def test_a_bad_bound_value_is_one_clear_message(tmp_path, server):
    reg, out = _model(tmp_path, server, _zip({"a.txt": b"a"}), "zip")
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, env=_env(OMZ_UNPACK_MAX_RATIO="lots"))
    assert proc.returncode == 1
    assert "OMZ_UNPACK_MAX_RATIO" in proc.stderr and "'lots'" in proc.stderr and "Traceback" not in proc.stderr


def test_free_space_is_checked_before_unpacking(small_tmpfs, tmp_path, server):
    rng = random.Random(2)
    data = bytes(rng.choice(b"ACGT") for _ in range(3 * MiB))  # compresses ~4x: 3 MiB from ~0.8 MiB
    archive = _zip({"w.txt": data})
    assert len(archive) < 1 * MiB
    reg, _ = _model(tmp_path, server, archive, "zip")
    out = small_tmpfs / "out"  # a 2 MiB filesystem
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 1
    assert "cannot unpack" in proc.stderr and "is free in" in proc.stderr and "need" in proc.stderr, proc.stderr
    folder = out / "public" / "m1"
    assert not (folder / "w.txt").exists() and not list(folder.glob(".*unpacking*"))
    assert (folder / "pack.arc").exists()


def test_a_member_named_like_its_archive_is_refused_not_deleted(tmp_path, server):
    archive = _zip({"pack.zip": b"inner content", "other.txt": b"x"})
    reg, out = _model(tmp_path, server, archive, "zip", name="pack.zip")
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 1, proc.stderr
    assert "refused to unpack" in proc.stderr and "'pack.zip'" in proc.stderr and "archive itself" in proc.stderr
    folder = out / "public" / "m1"
    assert (folder / "pack.zip").read_bytes() == archive  # the archive kept, nothing extracted
    assert not (folder / "other.txt").exists()
