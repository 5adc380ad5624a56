"""--cache_dir, --offline and the disk-space check through the command (and the Python API), with
loopback nginx servers counting requests, real processes, and openvino-dev's omz_downloader."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

from helpers_cache import (
    digest, downloader, downloader_popen, events, omz_downloader, omz_package_copy, serve, served_by,
    tree, write_model,
)
from helpers_nginx import nginx_factory, nginx_mirror  # noqa: F401
from omz_tools.download.cache import ContentCache

KiB, MiB = 1024, 1 << 20


def linked(target: Path, entry: Path, scratch: Path) -> bool:
    """target is a hardlink of entry (same inode), or a reflink where the filesystem can clone."""
    if os.path.samefile(target, entry):
        return True
    from omz_tools.download.cache import reflink
    probe = scratch / "reflink-probe"
    try:
        reflink(entry, probe)  # a separate inode sharing blocks: only where FICLONE works
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.fixture
def origin(nginx_mirror):
    return nginx_mirror  # here the nginx plays the original source


def two_file_model(tmp_path: Path, server, model: str = "m", big: int = 600 * KiB) -> tuple:
    data = {"w.bin": os.urandom(big), "net.txt": b"layers\n" * 100}
    for name, blob in data.items():
        serve(server.root, f"files/{model}/{name}", blob)
    reg = write_model(tmp_path / "reg", model, {n: (b, f"{server.url}/files/{model}/{n}")
                                                for n, b in data.items()})
    return reg, data


def test_cache_hit_is_a_link_and_makes_no_request(tmp_path, origin, clean_env):
    reg, data = two_file_model(tmp_path, origin)
    cache = tmp_path / "cache"
    first = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out1", "--cache_dir", cache,
                       "--progress_format", "json", env=clean_env)
    assert first.returncode == 0, first.stderr
    assert len(origin.requests()) == 2 and set(served_by(first.stdout).values()) == {"original"}
    entries = {name: ContentCache(cache).entry_path("sha256", digest(blob)) for name, blob in data.items()}
    assert all(entry.exists() for entry in entries.values())

    second = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out2", "--cache_dir", cache,
                        "--progress_format", "json", env=clean_env)
    assert second.returncode == 0, second.stderr
    assert len(origin.requests()) == 2  # no network request at all
    assert served_by(second.stdout) == {name: f"cache {cache}" for name in data}
    for name, blob in data.items():
        target = tmp_path / "out2" / "public" / "m" / name
        assert digest(target.read_bytes()) == digest(blob)
        assert linked(target, entries[name], tmp_path)
    assert tree(tmp_path / "out2") == ["public/m/net.txt", "public/m/w.bin"]
    text = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out3", "--cache_dir", cache,
                      env=clean_env)
    assert text.returncode == 0 and f"Served: 2 by cache {cache}" in text.stdout


def test_damaged_cache_entry_is_removed_and_fetched_again(tmp_path, origin, clean_env):
    reg, data = two_file_model(tmp_path, origin)
    cache = tmp_path / "cache"
    assert downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out1", "--cache_dir", cache,
                      env=clean_env).returncode == 0
    entry = ContentCache(cache).entry_path("sha256", digest(data["w.bin"]))
    damaged = bytearray(entry.read_bytes())
    damaged[1000] ^= 0xFF
    os.unlink(entry)  # a fresh inode with other bytes: its record no longer holds
    entry.write_bytes(bytes(damaged))
    proc = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out2", "--cache_dir", cache,
                      "--progress_format", "json", env=clean_env)
    assert proc.returncode == 0, proc.stderr
    notes = [e["message"] for e in events(proc.stdout) if e["$type"] == "model_file_download_note"]
    assert any("damaged" in note and str(entry) in note for note in notes), notes
    assert served_by(proc.stdout) == {"w.bin": "original", "net.txt": f"cache {cache}"}
    assert digest(entry.read_bytes()) == digest(data["w.bin"])  # the cache is whole again


def test_offline_succeeds_from_cache_and_present_files_and_names_what_is_missing(tmp_path, nginx_factory,
                                                                                  clean_env):
    origin = nginx_factory("origin")
    reg, data = two_file_model(tmp_path, origin, "m")
    write_model(reg, "other", {"o.bin": (b"other" * 100, f"{origin.url}/files/other/o.bin")})
    serve(origin.root, "files/other/o.bin", b"other" * 100)
    cache = tmp_path / "cache"
    assert downloader("--registry", reg, "--name", "m", "-o", tmp_path / "online", "--cache_dir", cache,
                      env=clean_env).returncode == 0
    before = len(origin.requests())

    from_cache = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "off1", "--cache_dir", cache,
                            "--offline", env=clean_env)
    assert from_cache.returncode == 0, from_cache.stderr
    present = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "online",
                         env=dict(clean_env, OMZ_OFFLINE="1"))
    assert present.returncode == 0, present.stderr

    missing = downloader("--registry", reg, "--name", "m,other", "-o", tmp_path / "off2", "--cache_dir", cache,
                         "--offline", "--mirror", origin.url, env=clean_env)
    assert missing.returncode == 1
    assert "FAILED:" in missing.stderr and "other: o.bin: not available offline" in missing.stderr
    assert str(cache) in missing.stderr and "Traceback" not in missing.stderr
    assert tree(tmp_path / "off2") == ["public/m/net.txt", "public/m/w.bin"]
    assert len(origin.requests()) == before  # offline: not one connection, mirror or not


def test_a_cache_filled_by_openvino_devs_omz_downloader_serves_ours(tmp_path, origin, clean_env):
    xml, weights = b"<net/>\n" * 50, os.urandom(700 * KiB)
    files = {"FP32/legacy.xml": (xml, f"{origin.url}/legacy/legacy.xml"),
             "FP32/legacy.bin": (weights, f"{origin.url}/legacy/legacy.bin")}
    serve(origin.root, "legacy/legacy.xml", xml)
    serve(origin.root, "legacy/legacy.bin", weights)
    theirs = omz_package_copy(tmp_path / "omz_copy")
    write_model(theirs / "omz_tools" / "models", "legacy", files, algorithm="sha384", framework="dldt")
    ours = write_model(tmp_path / "reg", "legacy", files, algorithm="sha384", framework="dldt")
    cache = tmp_path / "cache"

    old = omz_downloader("--name", "legacy", "-o", tmp_path / "old_out", "--cache_dir", cache,
                         env=clean_env, pythonpath=theirs)
    assert old.returncode == 0, old.stdout + old.stderr
    assert len(origin.requests()) == 2
    entry = cache / "1" / digest(weights, "sha384")[:2] / digest(weights, "sha384")[2:]
    assert entry.exists()  # omz_downloader's own layout

    proc = downloader("--registry", ours, "--name", "legacy", "-o", tmp_path / "out", "--cache_dir", cache,
                      "--offline", "--progress_format", "json", env=clean_env)
    assert proc.returncode == 0, proc.stderr
    assert set(served_by(proc.stdout).values()) == {f"cache {cache}"}
    target = tmp_path / "out" / "public" / "legacy" / "FP32" / "legacy.bin"
    assert target.read_bytes() == weights
    assert linked(target, entry, tmp_path)


def test_four_processes_on_one_cache_transfer_each_file_once(tmp_path, nginx_factory, clean_env):
    origin = nginx_factory("origin", limit_rate="4m")  # ~2 s per transfer: the processes overlap
    reg, data = two_file_model(tmp_path, origin, big=8 * MiB)
    cache = tmp_path / "cache"
    outs = [tmp_path / "shared", tmp_path / "shared", tmp_path / "own1", tmp_path / "own2"]
    procs = [downloader_popen("--registry", reg, "--name", "m", "-o", out, "--cache_dir", cache,
                              "--progress_format", "json", env=clean_env) for out in outs]
    results = [(proc.communicate(), proc.returncode) for proc in procs]
    assert [code for _, code in results] == [0] * 4, [err for (_, err), _ in results]
    assert sorted(origin.requests()) == [("GET", "/files/m/net.txt", 200), ("GET", "/files/m/w.bin", 200)]
    for out in set(outs):
        assert tree(out) == ["public/m/net.txt", "public/m/w.bin"]
        for name, blob in data.items():
            assert digest((out / "public" / "m" / name).read_bytes()) == digest(blob)
    servers = [served_by(out)["w.bin"] for (out, _), _ in results]
    assert sorted(servers) == [f"cache {cache}"] * 3 + ["original"]


def test_a_process_killed_while_holding_the_lock_does_not_block_the_next(tmp_path, nginx_factory, clean_env):
    origin = nginx_factory("origin", limit_rate="1m")
    reg, data = two_file_model(tmp_path, origin, big=6 * MiB)
    cache, out = tmp_path / "cache", tmp_path / "out"
    part = out / "public" / "m" / "w.bin.part"
    victim = downloader_popen("--registry", reg, "--name", "m", "-o", out, "--cache_dir", cache, env=clean_env)
    while not (part.exists() and part.stat().st_size > 0):  # it holds w.bin's lock while writing
        assert victim.poll() is None, victim.communicate()
        time.sleep(0.05)
    lock = ContentCache(cache)
    from omz_tools.download.cache import CacheLockTimeout
    with pytest.raises(CacheLockTimeout):
        with lock.locked("sha256", digest(data["w.bin"]), timeout=0):
            pass
    victim.send_signal(signal.SIGKILL)
    victim.communicate()

    rerun = downloader("--registry", reg, "--name", "m", "-o", out, "--cache_dir", cache, env=clean_env)
    assert rerun.returncode == 0, rerun.stderr
    assert digest((out / "public" / "m" / "w.bin").read_bytes()) == digest(data["w.bin"])
    assert ContentCache(cache).lookup("sha256", digest(data["w.bin"]), len(data["w.bin"])).entry is not None


# Skipped where a tmpfs cannot be mounted; test_disk_space_refusal_through_the_api covers the check
# with a fake free-space figure.
def test_disk_space_refusal_on_a_small_filesystem(tmp_path, origin, small_tmpfs, clean_env):
    reg, _ = two_file_model(tmp_path, origin, big=3 * MiB)
    proc = downloader("--registry", reg, "--name", "m", "-o", small_tmpfs / "out", env=clean_env)
    assert proc.returncode == 1
    message = proc.stderr.strip()
    assert message.startswith("Not enough disk space") and str(small_tmpfs / "out") in message
    assert "Nothing was downloaded" in message and "Traceback" not in message
    assert origin.requests() == [] and not (small_tmpfs / "out").exists()


def test_disk_space_refusal_through_the_api(tmp_path, origin, clean_env, monkeypatch):
    import omz_tools
    from omz_tools.download import space
    from omz_tools.download.space import NotEnoughSpace

    reg, data = two_file_model(tmp_path, origin)
    monkeypatch.setattr(space, "free_bytes", lambda _path: 1000)
    with pytest.raises(NotEnoughSpace, match="needs"):
        omz_tools.download("m", tmp_path / "out", registries=[reg])
    assert origin.requests() == []


def test_api_takes_cache_mirrors_and_offline(tmp_path, nginx_factory, clean_env):
    import omz_tools

    origin, mirror = nginx_factory("origin"), nginx_factory("mirror")
    reg, data = two_file_model(tmp_path, origin)
    for name, blob in data.items():
        serve(mirror.root, f"public/m/{name}", blob)
    cache = tmp_path / "cache"
    result = omz_tools.download("m", tmp_path / "out1", registries=[reg], cache_dir=cache, mirrors=[mirror.url])
    assert result.ok and {o.served_by for o in result.files} == {f"mirror {mirror.url}"}
    assert origin.requests() == []
    result = omz_tools.download("m", tmp_path / "out2", registries=[reg], cache_dir=cache, offline=True)
    assert result.ok and {o.served_by for o in result.files} == {f"cache {cache}"}
    result = omz_tools.download("m", tmp_path / "out3", registries=[reg], offline=True)
    assert not result.ok and "not available offline" in result.failures["m"]
    with pytest.raises(ValueError, match="--mirror"):
        omz_tools.download("m", tmp_path / "out4", registries=[reg], mirrors=["not a url"])
    assert len(mirror.requests()) == 2 and origin.requests() == []


def test_same_output_folder_and_cache_from_threads(tmp_path, origin, clean_env):
    """-j with two models sharing a file (same hash): one transfer."""
    blob = os.urandom(MiB)
    serve(origin.root, "files/shared.bin", blob)
    reg = write_model(tmp_path / "reg", "a", {"shared.bin": (blob, f"{origin.url}/files/shared.bin")})
    write_model(reg, "b", {"shared.bin": (blob, f"{origin.url}/files/shared.bin")})
    proc = downloader("--registry", reg, "--name", "a,b", "-o", tmp_path / "out", "--cache_dir",
                      tmp_path / "cache", "-j", "2", env=clean_env)
    assert proc.returncode == 0, proc.stderr
    assert origin.requests() == [("GET", "/files/shared.bin", 200)]
    for model in ("a", "b"):
        assert hashlib.sha256((tmp_path / "out" / "public" / model / "shared.bin").read_bytes()).hexdigest() \
            == digest(blob)


def test_a_hit_removes_a_part_left_by_an_interrupted_run(tmp_path, origin, clean_env):
    reg, data = two_file_model(tmp_path, origin)
    cache = tmp_path / "cache"
    assert downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out1", "--cache_dir", cache,
                      env=clean_env).returncode == 0
    model_dir = tmp_path / "out2" / "public" / "m"
    model_dir.mkdir(parents=True)
    (model_dir / "w.bin.part").write_bytes(data["w.bin"][:1000])
    proc = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out2", "--cache_dir", cache,
                      "--offline", env=clean_env)
    assert proc.returncode == 0, proc.stderr
    assert tree(tmp_path / "out2") == ["public/m/net.txt", "public/m/w.bin"]


def test_offline_files_that_cannot_be_fetched_need_no_space(tmp_path, origin, clean_env, monkeypatch):
    import omz_tools
    from omz_tools.download import space

    reg, _ = two_file_model(tmp_path, origin)
    monkeypatch.setattr(space, "free_bytes", lambda _path: 0)
    result = omz_tools.download("m", tmp_path / "out", registries=[reg], offline=True)
    assert not result.ok and "not available offline" in result.failures["m"]  # not "no space"
