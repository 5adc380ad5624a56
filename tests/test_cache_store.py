"""The content-addressed cache on real files: layout, verification, records, damage, materialising."""

from __future__ import annotations

import errno
import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest

from omz_tools.download import cache as cache_mod
from omz_tools.download.postprocess import regex_replace
from omz_tools.registry import RegexReplace
from omz_tools.download.cache import CacheError, ContentCache


def make_file(path: Path, size: int, seed: int = 0) -> tuple:
    data = (hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1))[:size]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data, hashlib.sha256(data).hexdigest(), hashlib.sha384(data).hexdigest()


@pytest.fixture
def cache(tmp_path) -> ContentCache:
    return ContentCache(tmp_path / "cache")


def test_layout_sha384_is_omz_and_sha256_has_its_own_area(cache):
    h384 = "ab" + "0" * 94
    h256 = "cd" + "1" * 62
    assert cache.entry_path("sha384", h384) == cache.root / "1" / "ab" / ("0" * 94)
    assert cache.entry_path("sha256", h256) == cache.root / "sha256" / "cd" / ("1" * 62)
    assert (cache.root / "1" / "staging").is_dir()  # where omz_downloader stages too


@pytest.mark.parametrize("algorithm", ["sha256", "sha384"])
def test_store_then_hit_by_hardlink_or_reflink(cache, tmp_path, algorithm):
    data, h256, h384 = make_file(tmp_path / "src.bin", 300_000)
    digest = h256 if algorithm == "sha256" else h384
    entry = cache.store(tmp_path / "src.bin", algorithm, digest, len(data))
    assert entry == cache.entry_path(algorithm, digest) and entry.read_bytes() == data
    assert not list(cache.staging.iterdir())  # no temporary left behind

    dest = tmp_path / "out" / "public" / "m" / "model.bin"
    hit, damaged = cache.fetch_to(algorithm, digest, len(data), dest)
    assert damaged is None and hit.method in ("reflink", "hardlink")
    assert dest.read_bytes() == data
    if hit.method == "hardlink":
        assert os.stat(dest).st_ino == os.stat(entry).st_ino
    assert [p.name for p in dest.parent.iterdir()] == ["model.bin"]  # no temp beside it


def test_hit_onto_the_same_inode_changes_nothing(cache, tmp_path):
    data, h256, _ = make_file(tmp_path / "src.bin", 1000)
    cache.store(tmp_path / "src.bin", "sha256", h256, len(data))
    dest = tmp_path / "out" / "f.bin"
    first, _ = cache.fetch_to("sha256", h256, len(data), dest)
    second, _ = cache.fetch_to("sha256", h256, len(data), dest)
    if first.method == "hardlink":
        assert second.method == "present"
    assert [p.name for p in dest.parent.iterdir()] == ["f.bin"]


def test_copy_when_links_are_impossible(cache, tmp_path, monkeypatch):
    data, h256, _ = make_file(tmp_path / "src.bin", 50_000)
    cache.store(tmp_path / "src.bin", "sha256", h256, len(data))

    def no_link(*_args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(cache_mod, "reflink", no_link)
    monkeypatch.setattr(cache_mod.os, "link", no_link)
    dest = tmp_path / "out" / "f.bin"
    hit, _ = cache.fetch_to("sha256", h256, len(data), dest)
    assert hit.method == "copy" and dest.read_bytes() == data
    assert os.stat(dest).st_ino != os.stat(cache.entry_path("sha256", h256)).st_ino


def test_store_refuses_a_file_whose_hash_is_wrong(cache, tmp_path):
    data, h256, _ = make_file(tmp_path / "src.bin", 4096)
    with pytest.raises(CacheError, match="Refused to cache") as info:
        cache.store(tmp_path / "src.bin", "sha256", "0" * 64, len(data))
    assert "expected 4096 bytes" in str(info.value) and h256 in str(info.value)
    assert not cache.entry_path("sha256", "0" * 64).exists()
    assert not list(cache.staging.iterdir())


def test_a_hit_with_a_holding_record_is_not_rehashed(cache, tmp_path, monkeypatch):
    data, h256, _ = make_file(tmp_path / "src.bin", 10_000)
    cache.store(tmp_path / "src.bin", "sha256", h256, len(data))
    assert cache.record_path("sha256", h256).exists()
    calls = []
    real = cache_mod.hash_file
    monkeypatch.setattr(cache_mod, "hash_file", lambda *a: calls.append(a) or real(*a))
    found = cache.lookup("sha256", h256, len(data))
    assert found.entry is not None and not found.rehashed and calls == []
    found = cache.lookup("sha256", h256, len(data), full_check=True)
    assert found.entry is not None and found.rehashed and len(calls) == 1


def test_entry_without_record_is_hashed_once_then_trusted(cache, tmp_path):
    data, _, h384 = make_file(tmp_path / "src.bin", 10_000)
    entry = cache.entry_path("sha384", h384)
    entry.parent.mkdir(parents=True)
    entry.write_bytes(data)  # as another tool (omz_downloader) would leave it: no record
    assert cache.lookup("sha384", h384, len(data)).rehashed
    assert not cache.lookup("sha384", h384, len(data)).rehashed


def test_damaged_entry_is_detected_when_its_record_no_longer_holds(cache, tmp_path):
    data, h256, _ = make_file(tmp_path / "src.bin", 10_000)
    entry = cache.store(tmp_path / "src.bin", "sha256", h256, len(data))
    os.unlink(tmp_path / "src.bin")  # make the entry the only link, then damage it in place
    with open(entry, "r+b") as stream:
        stream.write(b"X")
    os.utime(entry, ns=(1, 1))  # whatever the clock: the record's mtime no longer holds
    found = cache.lookup("sha256", h256, len(data))
    assert found.entry is None and "damaged" in found.damaged and h256 in found.damaged
    assert "removed" in found.damaged
    assert not entry.exists() and not cache.record_path("sha256", h256).exists()


def test_full_check_finds_damage_that_the_record_hides(cache, tmp_path):
    data, h256, _ = make_file(tmp_path / "src.bin", 10_000)
    entry = cache.store(tmp_path / "src.bin", "sha256", h256, len(data))
    os.unlink(tmp_path / "src.bin")
    st = os.stat(entry)
    with open(entry, "r+b") as stream:
        stream.write(b"X")
    os.utime(entry, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, mtime and inode
    assert cache.lookup("sha256", h256, len(data)).entry is not None  # the record is trusted...
    found = cache.lookup("sha256", h256, len(data), full_check=True)  # ...until a full check
    assert found.entry is None and found.damaged and not entry.exists()


def test_wrong_size_entry_is_removed_without_hashing(cache, tmp_path, monkeypatch):
    entry = cache.entry_path("sha256", "a" * 64)
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b"short")
    monkeypatch.setattr(cache_mod, "hash_file", lambda *a: pytest.fail("hashed a wrong-size entry"))
    found = cache.lookup("sha256", "a" * 64, 100)
    assert found.entry is None and "found 5 bytes" in found.damaged and not entry.exists()


def test_regex_replace_style_rewrite_does_not_touch_the_cache(cache, tmp_path):
    """Why hardlinked outputs are safe: we rewrite by new file + rename, never in place."""
    data = b"alpha beta gamma\n" * 200  # a text file, as regex_replace rewrites
    (tmp_path / "src.txt").write_bytes(data)
    h256 = hashlib.sha256(data).hexdigest()
    cache.store(tmp_path / "src.txt", "sha256", h256, len(data))
    dest = tmp_path / "out" / "f.txt"
    placed, _ = cache.fetch_to("sha256", h256, len(data), dest)
    if placed.method == "hardlink":  # the case this is about: the output file is the cache entry
        assert os.path.samefile(dest, cache.entry_path("sha256", h256))
    step = RegexReplace(file=PurePosixPath("f.txt"), pattern=re.compile("[a-z]+"), replacement="X", count=0)
    regex_replace(dest.parent, step)  # the downloader's own rewrite
    assert "X" in dest.read_text() and dest.read_bytes() != data
    assert cache.lookup("sha256", h256, len(data), full_check=True).entry is not None


# -- openvino-dev's omz_downloader cache, in both directions ----------------------------------------

omz_cache = pytest.importorskip("omz_tools.download_engine.cache")


class _Reporter:
    def __init__(self):
        self.errors = []

    def log_error(self, fmt, *args):
        self.errors.append(fmt.format(*args))

    def log_details(self, fmt, *args):
        self.errors.append(fmt.format(*args))


def test_omz_downloader_reads_our_sha384_entries(cache, tmp_path):
    data, _, h384 = make_file(tmp_path / "src.bin", 123_456)
    cache.store(tmp_path / "src.bin", "sha384", h384, len(data))
    theirs = omz_cache.DirCache(cache.root)
    model_file = SimpleNamespace(size=len(data), checksum=omz_cache.ChecksumSHA384(bytes.fromhex(h384)))
    assert theirs.has(bytes.fromhex(h384))
    reporter = _Reporter()
    assert theirs.get(model_file, tmp_path / "theirs.bin", reporter), reporter.errors
    assert (tmp_path / "theirs.bin").read_bytes() == data


def test_we_read_entries_omz_downloader_wrote(cache, tmp_path):
    data, _, h384 = make_file(tmp_path / "src.bin", 123_456)
    omz_cache.DirCache(cache.root).put(bytes.fromhex(h384), tmp_path / "src.bin")
    dest = tmp_path / "out" / "f.bin"
    hit, damaged = cache.fetch_to("sha384", h384, len(data), dest)
    assert hit is not None and damaged is None and dest.read_bytes() == data
