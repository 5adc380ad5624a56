"""kill -9 at random moments, rerun, again: after every kill no final path (model files, files
rewritten by regex_replace, files unpacked from an archive, the cache's entries) holds a bad file;
each is absent or holds exactly the expected bytes. A last uninterrupted run completes and
everything verifies.

The files trickle from a loopback server so that a run takes seconds and the kills land during
transfers, renames, resumes, the regex_replace child and unpacking (151 members, each fsynced).
The moments are drawn from a seeded generator: OMZ_TORTURE_SEED and OMZ_TORTURE_ITERATIONS change
the seed (default 11) and the number of kills (default 25)."""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import shutil
import signal
import subprocess
import time
import zipfile

from helpers_http import Fault, downloader_cmd, one_model, server  # noqa: F401

KiB, MiB = 1 << 10, 1 << 20
HANG_GUARD = 600  # seconds for one uninterrupted run: only so that a regression cannot hang the suite


def _payload(seed: int):
    rng = random.Random(seed)
    weights = rng.randbytes(3 * MiB)
    text = "".join(f"layer_{i}: mean {i % 10} 2 3\n" for i in range(40000)).encode()
    members = {f"part/{i:03d}.bin": rng.randbytes(8 * KiB) for i in range(150)}
    members["big.bin"] = rng.randbytes(512 * KiB)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return weights, text, members, buffer.getvalue()


def _run(reg, out, cache, env):
    return subprocess.Popen([downloader_cmd(), "--registry", str(reg), "--name", "m1", "-o", str(out),
                             "--cache_dir", str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)


def test_kill_9_at_random_moments_never_leaves_a_bad_file_at_a_final_path(tmp_path, server):
    seed = int(os.environ.get("OMZ_TORTURE_SEED", "11"))
    iterations = int(os.environ.get("OMZ_TORTURE_ITERATIONS", "25"))
    weights, text, members, archive = _payload(seed)
    rewritten = re.sub(rb"mean (\d)", rb"mean [\1]", text)
    reg, out = one_model(tmp_path, server, {"w.bin": weights, "cfg.txt": text, "pack.zip": archive},
                         postprocessing=[
                             {"$type": "regex_replace", "file": "cfg.txt", "pattern": r"mean (\d)",
                              "replacement": r"mean [\1]"},
                             {"$type": "unpack_archive", "file": "pack.zip", "format": "zip"}])
    for path in ("/m1/w.bin", "/m1/cfg.txt", "/m1/pack.zip"):  # every request trickles, resumed ones too
        server.queue_fault(path, Fault("trickle", after=64 * KiB, delay=0.0005), times=100000)
    cache = tmp_path / "cache"
    folder = out / "public" / "m1"
    env = dict(os.environ, CI="true")
    for key in ("OMZ_REGISTRY", "OMZ_MIRROR", "OMZ_OFFLINE"):
        env.pop(key, None)
    good = {hashlib.sha256(data).hexdigest() for data in (weights, text, archive, *members.values())}
    allowed = {"w.bin": {weights}, "cfg.txt": {text, rewritten}, "cfg.txt.orig": {text},
               "pack.zip": {archive}, **{name: {data} for name, data in members.items()}}

    def check_final_paths(when: str) -> None:
        for name, contents in allowed.items():
            path = folder / name
            if os.path.lexists(path):
                assert not path.is_symlink() and path.is_file(), f"{when}: {path} is not a regular file"
                assert path.read_bytes() in contents, f"{when}: {path} holds bad bytes"
        for entry in (cache / "sha256").rglob("*") if (cache / "sha256").exists() else ():
            if entry.is_file():
                digest = entry.parent.name + entry.name
                assert hashlib.sha256(entry.read_bytes()).hexdigest() == digest and digest in good, \
                    f"{when}: the cache entry {entry} holds bad bytes"

    # One uninterrupted run elsewhere: how long a whole run takes, to spread the kills over it.
    start = time.monotonic()
    first = _run(reg, tmp_path / "timing-out", tmp_path / "timing-cache", env)
    _, err = first.communicate(timeout=HANG_GUARD)
    duration = time.monotonic() - start
    assert first.returncode == 0, err.decode()

    rng = random.Random(seed)
    finished = killed = 0
    for iteration in range(iterations):
        proc = _run(reg, out, cache, env)
        moment = rng.uniform(0.05, duration)
        try:
            proc.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the downloader and its regex_replace child
            killed += 1
        proc.communicate(timeout=HANG_GUARD)
        check_final_paths(f"after kill {iteration} at {moment:.2f} s")
        if os.environ.get("OMZ_TORTURE_TRACE"):
            state = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
            print(f"kill {iteration} at {moment:.2f} s: rc {proc.returncode}; {len(state)} entries: "
                  f"{[n for n in state if not n.startswith('part')][:12]}")
        if proc.returncode == 0:
            finished += 1
            # It got through: start over from nothing, so that later kills hit fresh work again.
            shutil.rmtree(out)
            shutil.rmtree(cache)
        else:
            assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""

    final = _run(reg, out, cache, env)
    _, err = final.communicate(timeout=HANG_GUARD)
    assert final.returncode == 0, err.decode()
    check_final_paths("after the final run")
    assert (folder / "w.bin").read_bytes() == weights
    assert (folder / "cfg.txt").read_bytes() == rewritten and (folder / "cfg.txt.orig").read_bytes() == text
    assert not (folder / "pack.zip").exists()
    for name, data in members.items():
        assert (folder / name).read_bytes() == data
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith((".part", ".part.json", ".lock", ".tmp"))
                 or "unpacking" in p.name or "regex-tmp" in p.name]
    assert not leftovers
    # And a full check of everything in place: all verified, nothing fetched again.
    requests = len(server.log)
    check = subprocess.run([downloader_cmd(), "--registry", str(reg), "--name", "m1", "-o", str(out),
                            "--check_all"], capture_output=True, text=True, env=env, timeout=HANG_GUARD)
    assert check.returncode == 0, check.stderr
    assert len(server.log) == requests
    assert killed >= iterations // 2, f"only {killed} of {iterations} runs were killed (a run takes {duration:.1f} s)"
