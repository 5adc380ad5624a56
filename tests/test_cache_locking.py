"""Many processes and threads on one cache: each file fetched once, locks of killed processes freed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from omz_tools.download.cache import CacheLockTimeout, ContentCache

DATA = bytes(range(256)) * 4096  # 1 MiB
DIGEST = hashlib.sha256(DATA).hexdigest()

# One "downloader": lock, hit -> materialise, miss -> "download" (slowly) + store, all outputs
# verified. Each transfer appends a line to a shared counter file (O_APPEND: atomic lines).
WORKER = textwrap.dedent("""
    import hashlib, os, sys, time
    from pathlib import Path
    from omz_tools.download.cache import ContentCache
    cache_dir, dest, counter, data_file = map(Path, sys.argv[1:5])
    data = data_file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    cache = ContentCache(cache_dir)
    with cache.locked("sha256", digest):
        hit, damaged = cache.fetch_to("sha256", digest, len(data), dest)
        if hit is None:
            part = dest.with_name(dest.name + f".{os.getpid()}.part")
            part.parent.mkdir(parents=True, exist_ok=True)
            with open(part, "wb") as out:
                for i in range(0, len(data), 65536):
                    out.write(data[i:i + 65536])
                    time.sleep(0.005)  # a transfer that takes a while, so the others must wait
            os.replace(part, dest)
            with open(counter, "a") as c:
                c.write(f"{os.getpid()}\\n")
            cache.store(dest, "sha256", digest, len(data), verified=True)
    print("hit" if hit else "transfer")
""")

HOLDER = textwrap.dedent("""
    import sys, time
    from omz_tools.download.cache import ContentCache
    cache = ContentCache(sys.argv[1])
    with cache.locked("sha256", sys.argv[2]):
        print("locked", flush=True)
        time.sleep(3600)
""")


@pytest.fixture
def data_file(tmp_path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(DATA)
    return path


def test_four_processes_on_one_cache_and_one_output_folder_transfer_once(tmp_path, data_file):
    cache_dir, counter = tmp_path / "cache", tmp_path / "transfers.txt"
    dests = [tmp_path / "out" / "public" / "m" / "m.bin"] * 2 + [tmp_path / f"out{i}" / "m.bin" for i in (2, 3)]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(cache_dir), str(dest), str(counter),
                               str(data_file)], stdout=subprocess.PIPE, text=True) for dest in dests]
    outputs = [proc.communicate()[0].strip() for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4
    assert len(counter.read_text().splitlines()) == 1, outputs
    assert sorted(outputs) == ["hit", "hit", "hit", "transfer"]
    for dest in set(dests):
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == DIGEST
        assert [p.name for p in dest.parent.iterdir()] == ["m.bin"]  # no temp or .part left
    assert not list((cache_dir / "1" / "staging").iterdir())


def test_threads_of_one_process_exclude_each_other(tmp_path):
    cache = ContentCache(tmp_path / "cache")
    transfers = []

    def job(i: int) -> str:
        dest = tmp_path / f"out{i % 3}" / "m.bin"
        with cache.locked("sha256", DIGEST):
            hit, _ = cache.fetch_to("sha256", DIGEST, len(DATA), dest)
            if hit is None:
                transfers.append(i)
                part = dest.with_name(f"m.bin.{i}.part")
                part.parent.mkdir(parents=True, exist_ok=True)
                part.write_bytes(DATA)
                os.replace(part, dest)
                cache.store(dest, "sha256", DIGEST, len(DATA), verified=True)
        return hashlib.sha256(dest.read_bytes()).hexdigest()

    with ThreadPoolExecutor(8) as pool:
        digests = list(pool.map(job, range(16)))
    assert len(transfers) == 1 and set(digests) == {DIGEST}


def _start_holder(cache_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(cache_dir), DIGEST],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_of_a_sigkilled_process_is_released_by_the_kernel(tmp_path):
    cache = ContentCache(tmp_path / "cache")
    holder = _start_holder(cache.root)
    try:
        with pytest.raises(CacheLockTimeout):  # held by a live process: not available
            with cache.locked("sha256", DIGEST, timeout=0):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert holder.returncode == -signal.SIGKILL
    assert cache.lock_path("sha256", DIGEST).exists()  # the file stays; the lock does not
    with cache.locked("sha256", DIGEST, timeout=0):  # at once: no waiting for a dead process
        pass


def test_lock_timeout_says_what_to_do(tmp_path):
    cache = ContentCache(tmp_path / "cache")
    holder = _start_holder(cache.root)
    try:
        with pytest.raises(CacheLockTimeout) as info:
            with cache.locked("sha256", DIGEST, timeout=0.2):
                pass
    finally:
        holder.kill()
        holder.wait()
    message = str(info.value)
    assert str(cache.lock_path("sha256", DIGEST)) in message and "Waited 0.2 s" in message
    assert "killed" in message and "run again" in message and "\n" not in message
