"""Many downloader processes on one output folder (with and without a cache): each file is
fetched once, every output verifies, no lock or temporary file is left, and the folder record
keeps every entry; and Ctrl-C while the command is still importing is one line and exit 130."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers_http import Fault, downloader_cmd, one_model, server  # noqa: F401

MiB = 1 << 20
PROCESSES = 4


def _env() -> dict:
    env = dict(os.environ, CI="true", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env.pop("OMZ_REGISTRY", None)
    return env


def _start(reg: Path, out: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen([downloader_cmd(), "--registry", str(reg), "--name", "m1", "-o", str(out),
                             *map(str, extra)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())


def _run_all(commands: list) -> list:
    """Start every process first, then wait for them all: (returncode, stdout, stderr) each."""
    procs = [_start(*command) for command in commands]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate()
        results.append((proc.returncode, stdout, stderr))
    return results


def _check_folder(folder: Path, blobs: dict) -> None:
    """Every file verified; beside them only the record: no .part, .part.json, lock or temp file."""
    for name, blob in blobs.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == hashlib.sha256(blob).hexdigest()
    left = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert left == sorted([*blobs, ".omz_verified.json"]), left


@pytest.fixture
def shared(tmp_path, server):
    """A model of two files, the big one served slowly at its end on the first request only, so
    the first process to fetch it is still at it when the others look for it."""
    blobs = {"m.bin": os.urandom(4 * MiB), "m.xml": os.urandom(100_000)}
    reg, out = one_model(tmp_path, server, blobs)
    server.queue_fault("/m1/m.bin", Fault("trickle", after=4 * MiB - 32 * 1024, delay=0.01))
    return blobs, reg, out


def test_processes_sharing_an_output_folder_without_a_cache_fetch_each_file_once(shared, server):
    blobs, reg, out = shared
    results = _run_all([(reg, out)] * PROCESSES)
    assert [r[0] for r in results] == [0] * PROCESSES, results
    for name in blobs:
        assert len(server.requests_for(f"/m1/{name}")) == 1, (name, server.log)
    _check_folder(out / "public" / "m1", blobs)
    # The record lists both files: a rerun trusts them without hashing or fetching again.
    record = json.loads((out / "public" / "m1" / ".omz_verified.json").read_text())
    assert sorted(record["files"]) == sorted(blobs)
    rerun = _run_all([(reg, out)])
    assert rerun[0][0] == 0 and len(server.log) == 2


def test_processes_sharing_a_cache_and_an_output_folder_fetch_each_file_once(shared, server, tmp_path):
    blobs, reg, out = shared
    cache = tmp_path / "cache"
    # Two on the shared output folder, two on folders of their own: all on one cache.
    results = _run_all([(reg, out, "--cache_dir", cache)] * 2 +
                       [(reg, tmp_path / f"out{i}", "--cache_dir", cache) for i in (2, 3)])
    assert [r[0] for r in results] == [0] * PROCESSES, results
    for name in blobs:
        assert len(server.requests_for(f"/m1/{name}")) == 1, (name, server.log)
    for folder in (out, tmp_path / "out2", tmp_path / "out3"):
        _check_folder(folder / "public" / "m1", blobs)
    assert not list((cache / "1" / "staging").iterdir())


def test_a_damaged_file_at_the_final_path_is_replaced_once_by_processes_sharing_the_folder(shared, server):
    blobs, reg, out = shared
    folder = out / "public" / "m1"
    folder.mkdir(parents=True)
    (folder / "m.bin").write_bytes(b"\0" * len(blobs["m.bin"]))  # right size, wrong bytes
    (folder / "m.xml").write_bytes(blobs["m.xml"])  # right: hashed once, then trusted
    results = _run_all([(reg, out)] * PROCESSES)
    assert [r[0] for r in results] == [0] * PROCESSES, results
    assert len(server.requests_for("/m1/m.bin")) == 1 and not server.requests_for("/m1/m.xml")
    notes = [r[1] + r[2] for r in results if "was present but is not the expected file" in r[1] + r[2]]
    assert len(notes) == 1, results  # one process deleted the wrong file; the others found it fixed
    _check_folder(folder, blobs)


def test_a_lock_file_left_by_a_killed_process_is_taken_over_and_removed(shared, server):
    blobs, reg, out = shared
    folder = out / "public" / "m1"
    folder.mkdir(parents=True)
    (folder / ".m.bin.lock").write_bytes(b"")  # what a SIGKILLed run leaves (its lock is gone)
    results = _run_all([(reg, out)])
    assert results[0][0] == 0, results
    _check_folder(folder, blobs)


def test_processes_sharing_an_output_folder_postprocess_a_model_once(tmp_path, server):
    """regex_replace applied twice would double every 'x' (or fail), and a file that one process
    rewrote must not look damaged to another: one process fetches and postprocesses the model,
    the others wait for it and find it done."""
    import io
    import zipfile

    text = b"x-" * 1000
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("weights/w.bin", b"\1\2\3")
    reg, out = one_model(tmp_path, server, {"model.txt": text, "pack.zip": archive.getvalue()},
                         postprocessing=[
                             {"$type": "regex_replace", "file": "model.txt", "pattern": "x", "replacement": "xx"},
                             {"$type": "unpack_archive", "file": "pack.zip", "format": "zip"}])
    # The first process is still receiving model.txt (~1 s) while the others start.
    server.queue_fault("/m1/model.txt", Fault("trickle", after=0, delay=0.5))
    results = _run_all([(reg, out)] * PROCESSES)
    assert [r[0] for r in results] == [0] * PROCESSES, results
    for name in ("model.txt", "pack.zip"):
        assert len(server.requests_for(f"/m1/{name}")) == 1, (name, server.log)
    folder = out / "public" / "m1"
    assert (folder / "model.txt").read_bytes() == b"xx-" * 1000
    assert (folder / "model.txt.orig").read_bytes() == text
    assert (folder / "weights" / "w.bin").read_bytes() == b"\1\2\3" and not (folder / "pack.zip").exists()
    left = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert left == [".omz_verified.json", "model.txt", "model.txt.orig", "weights/w.bin"], left
    rerun = _run_all([(reg, out)])
    assert rerun[0][0] == 0 and len(server.log) == 2, rerun


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from omz_tools.locks import PathLock
    with PathLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(3600)
""")


def test_path_lock_of_a_sigkilled_holder_is_free_at_once_and_removed_after_use(tmp_path):
    from omz_tools.locks import LockTimeout, PathLock

    path = tmp_path / ".m.bin.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockTimeout) as info:  # held by a live process
            PathLock(path, timeout=0).acquire()
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert path.exists()  # the file stays after a kill; the lock does not
    with PathLock(path, timeout=0):
        assert path.exists()
    assert not path.exists()


def test_a_model_being_postprocessed_by_another_process_is_waited_for(tmp_path, server):
    """The model's lock held by another live process: the downloader says it waits, fetches
    nothing meanwhile, and goes on once the lock is free."""
    text = b"x-" * 100
    reg, out = one_model(tmp_path, server, {"model.txt": text}, postprocessing=[
        {"$type": "regex_replace", "file": "model.txt", "pattern": "x", "replacement": "xx"}])
    folder = out / "public" / "m1"
    folder.mkdir(parents=True)
    lock = folder / ".m1.postprocessing.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = _start(reg, out, "--progress_format", "json")
        first = json.loads(proc.stdout.readline())
        assert first["$type"] == "model_download_note" and first["model"] == "m1", first
        assert "another download of this model" in first["message"] and "waiting" in first["message"]
        assert not server.log and proc.poll() is None
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert "model_postprocessing_end" in stdout
    assert (folder / "model.txt").read_bytes() == b"xx-" * 100 and len(server.log) == 1
    assert not lock.exists()


def test_a_model_lock_left_by_a_killed_holder_goes_when_the_postprocessing_is_found_done(tmp_path, server):
    """A holder killed after the postprocessing was recorded leaves its lock file. The next run,
    which finds the postprocessing done and so never needs the lock, removes the file; while a
    live process holds it, the run neither waits nor removes it."""
    reg, out = one_model(tmp_path, server, {"model.txt": b"x-" * 100}, postprocessing=[
        {"$type": "regex_replace", "file": "model.txt", "pattern": "x", "replacement": "xx"}])
    folder = out / "public" / "m1"
    lock = folder / ".m1.postprocessing.lock"
    assert _run_all([(reg, out)])[0][0] == 0 and not lock.exists()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        rerun = _run_all([(reg, out)])
        assert rerun[0][0] == 0 and lock.exists(), rerun  # a live holder keeps its file
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock.exists()  # what a kill -9 leaves
    rerun = _run_all([(reg, out)])
    assert rerun[0][0] == 0, rerun
    assert not lock.exists() and len(server.log) == 1
    assert (folder / "model.txt").read_bytes() == b"xx-" * 100


RECORD_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from omz_tools.download import records
    folder, who, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    sys.stdin.readline()  # start together
    for i in range(count):
        path = folder / f"{who}-{i}.bin"
        path.write_bytes(b"x")
        records.record_file(path, "sha256", "0" * 64)
""")


def test_processes_updating_one_folder_record_keep_every_entry(tmp_path):
    folder, writers, count = tmp_path / "m", 6, 40
    folder.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", RECORD_WRITER, str(folder), f"p{w}", str(count)],
                              stdin=subprocess.PIPE, text=True) for w in range(writers)]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        proc.stdin.close()
        assert proc.wait() == 0
    record = json.loads((folder / ".omz_verified.json").read_text())
    assert len(record["files"]) == writers * count
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".bin")) == [".omz_verified.json"]


# Ctrl-C that lands while a module is being imported, made deterministic: an import hook raises
# KeyboardInterrupt when the named module is imported, exactly as the signal handler would.
INTERRUPT_IMPORT = textwrap.dedent("""
    import sys
    target = sys.argv.pop(1)
    class Interrupt:
        def find_spec(self, name, path=None, target_=None):
            if name == target:
                raise KeyboardInterrupt
            return None
    sys.meta_path.insert(0, Interrupt())
    from omz_tools.cli.downloader import main   # what the console script does
    main()
""")


@pytest.mark.parametrize("module", ["click", "omz_tools.cli.common", "yaml", "omz_tools.download.engine"])
def test_ctrl_c_while_importing_is_one_line_and_exit_130(tmp_path, module):
    proc = subprocess.run([sys.executable, "-c", INTERRUPT_IMPORT, module, "--name", "se-resnet-101",
                           "-o", str(tmp_path / "out")], capture_output=True, text=True, env=_env())
    assert proc.returncode == 130, proc
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Interrupted" in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.part"))
