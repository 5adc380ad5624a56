"""What the benchmark scripts share: timing a command (wall time, peak RSS), a converter's I/O floor,
medians, Markdown tables, a loopback nginx, a random FP32 IR model with its registry entry, and a
throwaway copy of openvino-dev's package (its omz_downloader only finds models in its own package folder).

Not a benchmark itself; the scripts import it as ``_bench`` (their folder is on sys.path).
"""

from __future__ import annotations

import argparse
import contextlib
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

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))  # helpers_nginx
TIME = "/usr/bin/time"


def size_arguments(description: str) -> argparse.Namespace:
    """--size-mb, --runs and --keep, as the download and cache benchmarks take them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size-mb", type=int, default=200, help="size of the big file (default 200)")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    return parser.parse_args()


def wall_time(cmd: list, env: dict) -> float:
    """Seconds one command takes; stops the benchmark if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed (exit {proc.returncode}):\n"
                 f"{proc.stderr.decode(errors='replace')}")
    return elapsed


def measure(cmd: list, env: dict, work: Path) -> tuple:
    """(seconds, peak RSS in MiB) of one command; stops the benchmark if it fails.

    Peak RSS comes from /usr/bin/time (its rss.txt goes to ``work``): a child forked straight from
    this Python process would report this process's own high-water mark if that is larger (Linux
    keeps it across exec). Without /usr/bin/time the RSS is nan.
    """
    rss_file = work / "rss.txt"
    timed = os.path.exists(TIME)
    seconds = wall_time([TIME, "-f", "%M", "-o", str(rss_file), *cmd] if timed else cmd, env)
    return seconds, int(rss_file.read_text().split()[-1]) / 1024 if timed else float("nan")


def run_logged(argv: list, env: dict, log: Path) -> tuple:
    """(seconds, peak RSS bytes) of one command, its output appended to ``log``; stops the benchmark
    if it fails. The peak comes from /usr/bin/time, as in :func:`measure`."""
    rss_file = log.with_suffix(".rss")
    start = time.perf_counter()
    with open(log, "ab") as stream:
        proc = subprocess.run([TIME, "-f", "%M", "-o", str(rss_file), *map(str, argv)], stdout=stream,
                              stderr=subprocess.STDOUT, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed (exit {proc.returncode}): {' '.join(map(str, argv))}\nsee {log}")
    return elapsed, int(rss_file.read_text().split()[-1]) * 1024


def floor_seconds(caffemodel: Path, sizes: list, scratch: Path) -> float:
    """Reading the caffemodel and writing files of ``sizes`` bytes (fsynced): the I/O any converter does,
    the floor under a conversion's time."""
    start = time.perf_counter()
    with open(caffemodel, "rb") as stream:
        while stream.read(1 << 24):
            pass
    chunk = b"\0" * (1 << 24)
    for index, size in enumerate(sizes):
        path = scratch / f"floor{index}.bin"
        with open(path, "wb") as stream:
            for offset in range(0, size, len(chunk)):
                stream.write(chunk[:min(len(chunk), size - offset)])
            stream.flush()
            os.fsync(stream.fileno())
        path.unlink()
    return time.perf_counter() - start


def medians(samples: dict) -> dict:
    return {key: statistics.median(values) for key, values in samples.items()}


def print_table(header: list, rows: list) -> None:
    """A Markdown table (cells are printed as given)."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


@contextlib.contextmanager
def work_folder(name: str, keep: bool):
    """A fresh temp folder, removed at the end unless ``keep``."""
    work = Path(tempfile.mkdtemp(prefix=f"omz-bench-{name}-"))
    try:
        yield work
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def served_ir_model(work: Path, model: str, xml_size: int, bin_size: int):
    """make_ir_model's files under work/served, served by a loopback nginx (its own files in
    work/nginx) until the end: yields (files, the NginxServer)."""
    from helpers_nginx import NOT_INSTALLED, NginxServer, find_nginx
    if find_nginx() is None:
        sys.exit(NOT_INSTALLED)
    files = make_ir_model(work / "served", model, xml_size, bin_size)
    (work / "nginx").mkdir()
    server = NginxServer(work / "served", work / "nginx")
    try:
        yield files, server
    finally:
        server.stop()


def make_ir_model(folder: Path, model: str, xml_size: int, bin_size: int) -> dict:
    """Random FP32 IR files under folder/public/<model>/; {name: (size, sha384, sha256)}."""
    files = {}
    for name, size in ((f"FP32/{model}.xml", xml_size), (f"FP32/{model}.bin", bin_size)):
        path = folder / "public" / model / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sha384, sha256, done = hashlib.sha384(), hashlib.sha256(), 0
        with open(path, "wb") as out:
            while done < size:
                chunk = os.urandom(min(1 << 22, size - done))
                sha384.update(chunk)
                sha256.update(chunk)
                out.write(chunk)
                done += len(chunk)
        files[name] = (size, sha384.hexdigest(), sha256.hexdigest())
    return files


def model_yml(model: str, files: dict, base_url: str, description: str, sha256: bool = False) -> str:
    """The entry for make_ir_model's files, served from base_url/public/<model>/. With ``sha256`` it
    has sha256 hashes (as our registry does), else OMZ's sha384 ``checksum`` (what openvino-dev takes)."""
    lines = [f"description: {description}", "task_type: classification", "files:"]
    for name, (size, digest384, digest256) in files.items():
        hash_line = f"    sha256: {digest256}" if sha256 else f"    checksum: {digest384}"
        lines += [f"  - name: {name}", f"    size: {size}", hash_line,
                  f"    source: {base_url}/public/{model}/{name}"]
    lines += ["framework: dldt", "license: https://example.com/license", ""]
    return "\n".join(lines)


def write_entry(registry: Path, model: str, text: str) -> None:
    (registry / "public" / model).mkdir(parents=True, exist_ok=True)
    (registry / "public" / model / "model.yml").write_text(text)


def openvino_dev_copy(work: Path) -> Path:
    """A copy of openvino-dev's omz_tools package at work/omz_copy (put it on PYTHONPATH); its
    registry, where entries go, is work/omz_copy/omz_tools/models."""
    theirs = Path(importlib.util.find_spec("omz_tools.omz_downloader").origin).parent
    copy = work / "omz_copy"
    shutil.copytree(theirs, copy / "omz_tools", ignore=shutil.ignore_patterns("__pycache__"))
    return copy
