"""Cache-hit benchmark: a ~200 MB model from a warm cache into a fresh output folder.

Side by side in one run: our ``omz-downloader --cache_dir`` against openvino-dev's
``omz_downloader --cache_dir`` (which copies the entry and re-hashes it). Both use the *same*
cache folder: openvino-dev's downloader fills it (cold, from a loopback nginx), which also shows
that an existing OMZ cache works with ours. openvino-dev's downloader gets the entry from a
throwaway copy of its package folder (PYTHONPATH), since its registry is its package's models/.

    .venv/bin/python benchmarks/cache.py [--size-mb 200] [--runs 5] [--keep]

Prints medians, the ratio and peak RSS (ru_maxrss of each child) as a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE.parent / "tests"))
MODEL = "bench-cache-model"


def make_payload(folder: Path, size_mb: int) -> dict:
    files = {}
    for name, size in ((f"FP32/{MODEL}.xml", 200_000), (f"FP32/{MODEL}.bin", size_mb << 20)):
        path = folder / "public" / MODEL / name
        path.parent.mkdir(parents=True, exist_ok=True)
        hasher, done = hashlib.sha384(), 0
        with open(path, "wb") as out:
            while done < size:
                chunk = os.urandom(min(1 << 22, size - done))
                hasher.update(chunk)
                out.write(chunk)
                done += len(chunk)
        files[name] = (size, hasher.hexdigest())
    return files


def model_yml(files: dict, base_url: str) -> str:
    lines = ["description: cache benchmark", "task_type: classification", "files:"]
    for name, (size, digest) in files.items():
        lines += [f"  - name: {name}", f"    size: {size}", f"    checksum: {digest}",
                  f"    source: {base_url}/public/{MODEL}/{name}"]
    lines += ["framework: dldt", "license: https://example.com/license", ""]
    return "\n".join(lines)


def run(cmd: list, env: dict) -> tuple:
    """(seconds, peak RSS MiB) of one child; fails loudly if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed ({os.waitstatus_to_exitcode(status)}):\n{stderr}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    from helpers_mirror import Nginx

    work = Path(tempfile.mkdtemp(prefix="omz-bench-cache-"))
    try:
        served = work / "served"
        files = make_payload(served, args.size_mb)
        (work / "nginx").mkdir()
        nginx = Nginx(served, work / "nginx")
        try:
            # openvino-dev's downloader: a copy of its package with our entry in its models/.
            import importlib.util
            theirs_pkg = Path(importlib.util.find_spec("omz_tools.omz_downloader").origin).parent
            copy = work / "omz_copy"
            shutil.copytree(theirs_pkg, copy / "omz_tools", ignore=shutil.ignore_patterns("__pycache__"))
            for registry in (copy / "omz_tools" / "models", work / "registry"):
                (registry / "public" / MODEL).mkdir(parents=True, exist_ok=True)
                (registry / "public" / MODEL / "model.yml").write_text(model_yml(files, nginx.url))
            env = dict(os.environ, CI="true")
            theirs_env = dict(env, PYTHONPATH=str(copy))
            theirs = [str(VENV_BIN / "omz_downloader"), "--name", MODEL]
            ours = [str(VENV_BIN / "omz-downloader"), "--name", MODEL, "--registry", str(work / "registry")]
            cache = work / "cache"

            fill = run(theirs + ["-o", str(work / "fill"), "--cache_dir", str(cache)], theirs_env)
            first = run(ours + ["-o", str(work / "first"), "--cache_dir", str(cache), "--offline"], env)
            times: dict = {"theirs": [], "ours": []}
            rss: dict = {"theirs": [], "ours": []}
            for i in range(args.runs):  # alternate, so both see the same page-cache state
                for who, cmd, who_env in (("theirs", theirs, theirs_env), ("ours", ours, env)):
                    out = work / f"out-{who}-{i}"
                    t, r = run(cmd + ["-o", str(out), "--cache_dir", str(cache)], who_env)
                    times[who].append(t)
                    rss[who].append(r)
                    shutil.rmtree(out)
            served_requests = len(nginx.requests())
        finally:
            nginx.stop()

        med = {who: statistics.median(values) for who, values in times.items()}
        print(f"cache hit of a {args.size_mb} MiB model into a fresh output folder, median of {args.runs}"
              f" ({os.cpu_count()} cores); nginx answered {served_requests} requests in all (the cold fill)")
        print()
        print("| run | omz_downloader --cache_dir | omz-downloader --cache_dir | ratio |")
        print("|---|---|---|---|")
        print(f"| cold fill of the cache (theirs) | {fill[0]:.2f} s | | |")
        print(f"| first hit of an OMZ-filled entry (ours re-hashes once) | | {first[0]:.2f} s | |")
        print(f"| cache hit, fresh output folder | {med['theirs']:.2f} s | {med['ours']:.2f} s | "
              f"{med['ours'] / med['theirs']:.2f}x |")
        print(f"| peak RSS | {max(rss['theirs']):.0f} MiB | {max(rss['ours']):.0f} MiB | |")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
