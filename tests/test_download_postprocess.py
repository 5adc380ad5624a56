"""Postprocessing: regex_replace and unpack_archive as Open Model Zoo does them, unsafe archive
members refused, done once (a rerun neither refetches nor redoes it), a failure fails that model only."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from helpers_http import events, one_model, run_downloader, server, write_registry  # noqa: F401


def _zip(members) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return buffer.getvalue()


def _tar(members, compression="") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tf:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                             "device": tarfile.CHRTYPE, "dir": tarfile.DIRTYPE}[kind]
                info.linkname = data.decode() if kind in ("symlink", "hardlink") else ""
                tf.addfile(info)
    return buffer.getvalue()


def test_regex_replace_once_and_not_again_on_rerun(tmp_path, server):
    text = b"name: resnet\nmean: 1 2 3\n"
    reg, out = one_model(tmp_path, server, {"model.txt": text}, postprocessing=[
        {"$type": "regex_replace", "file": "model.txt", "pattern": r"mean: (\d)", "replacement": r"mean: [\1]"}])
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--progress_format", "json")
    assert proc.returncode == 0, proc.stderr
    types = [e["$type"] for e in events(proc.stdout)]
    assert types[-4:] == ["model_download_end", "model_postprocessing_begin", "model_postprocessing_end",
                          "download_summary"]
    folder = out / "public" / "m1"
    assert (folder / "model.txt").read_text() == "name: resnet\nmean: [1] 2 3\n"
    assert (folder / "model.txt.orig").read_bytes() == text
    rerun = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--progress_format", "json")
    assert rerun.returncode == 0, rerun.stderr
    assert "model_postprocessing_begin" not in [e["$type"] for e in events(rerun.stdout)]
    assert len(server.requests_for("/m1/model.txt")) == 1
    assert (folder / "model.txt").read_text() == "name: resnet\nmean: [1] 2 3\n"
    # A full check re-hashes the rewritten file against the hash recorded for it: still fine.
    assert run_downloader("--registry", reg, "--name", "m1", "-o", out, "--check_all").returncode == 0
    assert len(server.requests_for("/m1/model.txt")) == 1


def test_regex_replace_that_matches_nothing_fails_that_model_only(tmp_path, server):
    registry = tmp_path / "reg"
    write_registry(registry, {
        "public/ok": {"files": [{"name": "a.txt", "data": b"a", "source": server.add("/a.txt", b"a")}]},
        "public/broken": {"files": [{"name": "b.txt", "data": b"b", "source": server.add("/b.txt", b"b")}],
                          "postprocessing": [{"$type": "regex_replace", "file": "b.txt", "pattern": "zzz",
                                              "replacement": "y"}]},
    })
    out = tmp_path / "out"
    proc = run_downloader("--registry", registry, "--name", "ok,broken", "-o", out)
    assert proc.returncode == 1
    assert "broken: regex_replace: the pattern 'zzz' matched nothing" in proc.stderr
    assert (out / "public" / "ok" / "a.txt").exists()
    assert "ok:" not in proc.stderr.split("FAILED:")[1]


@pytest.mark.parametrize("fmt", ["zip", "tar", "gztar"])
def test_unpack_archive_then_rerun_does_nothing(tmp_path, server, fmt):
    members = [("weights/w.bin", b"\1\2\3"), ("README", b"hi")]
    if fmt == "zip":
        archive = _zip([(n, d, None) for n, d in members])
    else:
        archive = _tar([(n, d, "file") for n, d in members], "gz" if fmt == "gztar" else "")
    reg, out = one_model(tmp_path, server, {"pack.arc": archive}, postprocessing=[
        {"$type": "unpack_archive", "file": "pack.arc", "format": fmt}])
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0, proc.stderr
    folder = out / "public" / "m1"
    assert (folder / "weights" / "w.bin").read_bytes() == b"\1\2\3" and (folder / "README").read_bytes() == b"hi"
    assert not (folder / "pack.arc").exists()  # removed after unpacking, as OMZ does
    assert not list(folder.glob(".*.unpacking*"))  # the staging folder is gone
    rerun = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--progress_format", "json")
    assert rerun.returncode == 0, rerun.stderr
    assert len(server.requests_for("/m1/pack.arc")) == 1
    assert "model_postprocessing_begin" not in [e["$type"] for e in events(rerun.stdout)]
    # An unpacked file gone missing: the archive is fetched and unpacked again.
    (folder / "README").unlink()
    assert run_downloader("--registry", reg, "--name", "m1", "-o", out).returncode == 0
    assert (folder / "README").read_bytes() == b"hi" and len(server.requests_for("/m1/pack.arc")) == 2


@pytest.mark.parametrize("member, why", [
    (("../evil.txt", b"x", None), "'..'"),
    (("sub/../../evil.txt", b"x", None), "'..'"),
    (("/tmp/evil-abs.txt", b"x", None), "an absolute path"),
    (("link", b"/etc/passwd", stat.S_IFLNK | 0o777), "a symbolic link"),
    (("dev", b"", stat.S_IFCHR | 0o600), "a device"),
])
def test_unsafe_zip_members_are_refused(tmp_path, server, member, why):
    archive = _zip([("fine.txt", b"ok", None), member])
    reg, out = one_model(tmp_path, server, {"pack.zip": archive}, postprocessing=[
        {"$type": "unpack_archive", "file": "pack.zip", "format": "zip"}])
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 1
    assert "refused to unpack" in proc.stderr and why in proc.stderr and "nothing was extracted" in proc.stderr
    folder = out / "public" / "m1"
    assert not (folder / "fine.txt").exists() and not (out / "public" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists() and not (folder / "link").exists()
    assert (folder / "pack.zip").exists() and not list(folder.glob(".*.unpacking*"))


@pytest.mark.parametrize("member, why", [
    (("../evil.txt", b"x", "file"), "'..'"),
    (("/tmp/evil-abs-tar.txt", b"x", "file"), "an absolute path"),
    (("link", b"/etc/passwd", "symlink"), "a symbolic link"),
    (("hard", b"fine.txt", "hardlink"), "a hard link"),
    (("dev", b"", "device"), "a device"),
])
def test_unsafe_tar_members_are_refused(tmp_path, server, member, why):
    archive = _tar([("fine.txt", b"ok", "file"), member], "gz")
    reg, out = one_model(tmp_path, server, {"pack.tgz": archive}, postprocessing=[
        {"$type": "unpack_archive", "file": "pack.tgz", "format": "gztar"}])
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--progress_format", "json")
    assert proc.returncode == 1
    errors = [e for e in events(proc.stdout) if e["$type"] == "model_download_error"]
    assert errors and "refused to unpack" in errors[0]["message"] and why in errors[0]["message"]
    folder = out / "public" / "m1"
    assert not (folder / "fine.txt").exists() and not (folder / "link").exists()
    assert not (tmp_path / "evil.txt").exists()
    import os
    assert not os.path.exists("/tmp/evil-abs-tar.txt")
