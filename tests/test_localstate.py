"""omz_tools.localstate: the one place that writes, hashes, fingerprints and links local files;
and a folder's verification record parsed once per run, not once per file query."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

import omz_tools
from helpers_http import one_model, server  # noqa: F401
from omz_tools import localstate


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "rec.json"
    target.write_bytes(b"old")
    localstate.atomic_write(target, b"new bytes")
    assert target.read_bytes() == b"new bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.json"]


def test_atomic_write_replaces_a_link_without_following_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    target = tmp_path / "rec.json"
    target.symlink_to(victim)
    localstate.write_json(target, {"a": 1})
    assert victim.read_bytes() == b"keep" and not target.is_symlink()
    assert localstate.read_json(target) == {"a": 1}


def test_temporary_names_differ_across_threads_and_calls():
    names = set()

    def take():
        for _ in range(50):
            names.add(localstate.temp_name("x"))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(names) == 200 and all(n.startswith(".x.") and n.endswith(".tmp") for n in names)


def test_read_json_of_a_link_a_fifo_or_garbage_is_empty(tmp_path):
    (tmp_path / "garbage").write_text("{not json")
    (tmp_path / "list").write_text("[1, 2]")
    (tmp_path / "real").write_text('{"x": 1}')
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.mkfifo(tmp_path / "fifo")
    for name in ("garbage", "list", "link", "fifo", "absent"):
        assert localstate.read_json(tmp_path / name) == {}, name


def test_hash_file_whole_prefix_and_into_a_given_hasher(tmp_path):
    data = os.urandom(3 * localstate.CHUNK_SIZE + 7)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert localstate.hash_file(path, "sha384") == (hashlib.sha384(data).hexdigest(), len(data))
    hasher = hashlib.sha256()
    digest, done = localstate.hash_file(path, "sha256", limit=localstate.CHUNK_SIZE + 5, hasher=hasher)
    assert done == localstate.CHUNK_SIZE + 5
    assert digest == hasher.hexdigest() == hashlib.sha256(data[:done]).hexdigest()


def test_place_links_or_copies_and_says_how(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"payload")
    dest = tmp_path / "out" / "dest"
    method = localstate.place(src, dest)
    assert method in ("reflink", "hardlink", "copy") and dest.read_bytes() == b"payload"
    assert localstate.place(src, dest) == ("present" if method == "hardlink" else method)
    copied = tmp_path / "copied"
    assert localstate.place(src, copied, allow_link=False) == "copy"
    assert not os.path.samefile(src, copied) and copied.read_bytes() == b"payload"


def test_fingerprint_holds_until_the_file_changes(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    entry = localstate.stat_fingerprint(path)
    assert localstate.fingerprint_holds(entry, path)
    path.unlink()
    path.write_bytes(b"abd")  # a new inode (or at least a new mtime)
    assert not localstate.fingerprint_holds(entry, path)
    assert not localstate.fingerprint_holds(None, path)


def test_a_rerun_parses_the_folder_record_once_not_once_per_file(tmp_path, server, monkeypatch):
    files = {f"f{i}.bin": os.urandom(1000 + i) for i in range(12)}
    reg, out = one_model(tmp_path, server, files)
    assert omz_tools.download(["m1"], output_dir=out, registries=[reg]).ok
    opened = []
    real_open = os.open

    def counting_open(path, flags, *args, **kwargs):
        if str(path).endswith(".omz_verified.json") and not flags & (os.O_WRONLY | os.O_RDWR):
            opened.append(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_open)
    again = omz_tools.download(["m1"], output_dir=out, registries=[reg])
    assert again.ok and again.count("present") == 12 and again.bytes_downloaded == 0
    assert len(opened) <= 1, f"the record was read {len(opened)} times for 12 files"
