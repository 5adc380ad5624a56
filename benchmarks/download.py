"""Download benchmark: a ~200 MB model file from a loopback nginx, side by side in one run.

    .venv/bin/python benchmarks/download.py [--size-mb 200] [--runs 5] [--keep]

Compares ``omz-downloader`` (ours), openvino-dev's ``omz_downloader`` and ``curl -s -o``:
cold (empty output folder) and a second run with the files present. Runs alternate between
the tools so each sees the same page-cache state. openvino-dev's downloader finds its models in
its package folder, so it runs from a throwaway copy of that folder (PYTHONPATH) holding our
entry (framework dldt, FP32 xml+bin, sha384 ``checksum``: what it accepts); it runs with CI=true.
Prints medians, ratios and peak RSS (ru_maxrss of each child) as a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
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
MODEL = "bench-download-model"


def make_payload(folder: Path, size_mb: int) -> dict:
    """Random FP32 IR files (a small xml, a big bin); name -> (size, sha384, sha256)."""
    files = {}
    for name, size in ((f"FP32/{MODEL}.xml", 100_000), (f"FP32/{MODEL}.bin", size_mb << 20)):
        path = folder / "public" / MODEL / name
        path.parent.mkdir(parents=True, exist_ok=True)
        hasher, hasher256, done = hashlib.sha384(), hashlib.sha256(), 0
        with open(path, "wb") as out:
            while done < size:
                chunk = os.urandom(min(1 << 22, size - done))
                hasher.update(chunk)
                hasher256.update(chunk)
                out.write(chunk)
                done += len(chunk)
        files[name] = (size, hasher.hexdigest(), hasher256.hexdigest())
    return files


def model_yml(files: dict, base_url: str, sha256: bool = False) -> str:
    """The entry; with ``sha256`` it uses sha256 hashes (as our registry does), else sha384."""
    lines = ["description: download benchmark", "task_type: classification", "files:"]
    for name, (size, digest, digest256) in files.items():
        hash_line = f"    sha256: {digest256}" if sha256 else f"    checksum: {digest}"
        lines += [f"  - name: {name}", f"    size: {size}", hash_line,
                  f"    source: {base_url}/public/{MODEL}/{name}"]
    lines += ["framework: dldt", "license: https://example.com/license", ""]
    return "\n".join(lines)


def run(cmd: list, env: dict, work: Path) -> tuple:
    """(seconds, peak RSS in MiB) of one child process; stops the benchmark if it fails.

    Peak RSS comes from /usr/bin/time: a child forked straight from this Python process would
    report this process's own high-water mark if it is larger (Linux keeps it across exec).
    """
    rss_file = work / "rss.txt"
    timed = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] + cmd if os.path.exists("/usr/bin/time") else cmd
    start = time.perf_counter()
    proc = subprocess.run(timed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}")
    rss = int(rss_file.read_text().split()[-1]) / 1024 if timed is not cmd else float("nan")
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    from helpers_nginx import NginxServer, find_nginx
    from omz_tools.download.verify import hash_file  # streams: keeps this process small

    binary = find_nginx()
    if binary is None:
        raise SystemExit("nginx is not installed: apt-get install -y nginx-light")
    work = Path(tempfile.mkdtemp(prefix="omz-bench-download-"))
    try:
        served = work / "served"
        files = make_payload(served, args.size_mb)
        (work / "nginx").mkdir()
        nginx = NginxServer(served, work / "nginx", binary)
        base = nginx.url("").rstrip("/")
        try:
            theirs_pkg = Path(importlib.util.find_spec("omz_tools.omz_downloader").origin).parent
            copy = work / "omz_copy"
            shutil.copytree(theirs_pkg, copy / "omz_tools", ignore=shutil.ignore_patterns("__pycache__"))
            for registry, sha256 in ((copy / "omz_tools" / "models", False), (work / "registry", False),
                                     (work / "registry256", True)):
                (registry / "public" / MODEL).mkdir(parents=True, exist_ok=True)
                (registry / "public" / MODEL / "model.yml").write_text(model_yml(files, base, sha256))
            env = dict(os.environ, CI="true")
            env.pop("OMZ_REGISTRY", None)
            theirs_env = dict(env, PYTHONPATH=str(copy))
            big = f"public/{MODEL}/FP32/{MODEL}.bin"
            small = f"public/{MODEL}/FP32/{MODEL}.xml"

            def tool(who: str, out: Path) -> list:
                if who == "omz_downloader":
                    return [str(VENV_BIN / "omz_downloader"), "--name", MODEL, "-o", str(out)]
                if who.startswith("omz-downloader"):
                    registry = work / ("registry256" if who.endswith("sha256") else "registry")
                    return [str(VENV_BIN / "omz-downloader"), "--name", MODEL, "-o", str(out),
                            "--registry", str(registry)]
                return ["curl", "-s", "--create-dirs", "-o", str(out / big), f"{base}/{big}",
                        "-o", str(out / small), f"{base}/{small}"]

            # Ours twice: with the same sha384 entry as openvino-dev's, and with sha256 hashes as our
            # registry has them (sha256 is hardware-accelerated on most CPUs, sha384 is not).
            tools = ["omz_downloader", "omz-downloader", "omz-downloader sha256", "curl"]
            times = {(who, kind): [] for who in tools for kind in ("cold", "rerun")}
            rss = {who: [] for who in tools}
            for _ in range(1):  # warm-up: page cache, .pyc files
                for who in tools:
                    out = work / f"warm-{who}"
                    run(tool(who, out), theirs_env if who == "omz_downloader" else env, work)
                    shutil.rmtree(out)
            for i in range(args.runs):
                for who in tools:
                    out = work / f"out-{who}"
                    who_env = theirs_env if who == "omz_downloader" else env
                    for kind in ("cold", "rerun"):
                        seconds, peak = run(tool(who, out), who_env, work)
                        times[(who, kind)].append(seconds)
                        rss[who].append(peak)
                    for name in files:
                        if who.startswith("omz-downloader"):  # every byte arrived as it should
                            got = hash_file(out / "public" / MODEL / name, "sha384")[0].hexdigest()
                            assert got == files[name][1], name
                    shutil.rmtree(out)
        finally:
            nginx.stop()

        med = {key: statistics.median(values) for key, values in times.items()}
        print(f"{args.size_mb} MiB + 100 kB from a loopback nginx, median of {args.runs} runs "
              f"({os.cpu_count()} cores)")
        print()
        print("| run | omz_downloader (openvino-dev, sha384) | omz-downloader (ours, sha384) | ratio "
              "| omz-downloader (ours, sha256) | ratio | curl -s -o (no verification) |")
        print("|---|---|---|---|---|---|---|")
        for kind, label in (("cold", "cold (empty output folder)"), ("rerun", "second run, files present")):
            theirs, ours, ours256, curl = (med[(who, kind)] for who in tools)
            print(f"| {label} | {theirs:.2f} s | {ours:.2f} s | {ours / theirs:.2f}x | {ours256:.2f} s | "
                  f"{ours256 / theirs:.2f}x | {curl:.2f} s |")
        peak = {who: max(values) for who, values in rss.items()}
        print(f"| peak RSS | {peak['omz_downloader']:.0f} MiB | {peak['omz-downloader']:.0f} MiB | "
              f"{peak['omz-downloader'] / peak['omz_downloader']:.2f}x | {peak['omz-downloader sha256']:.0f} MiB | "
              f"{peak['omz-downloader sha256'] / peak['omz_downloader']:.2f}x | {peak['curl']:.0f} MiB |")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
