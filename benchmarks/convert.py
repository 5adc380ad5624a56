#!/usr/bin/env python3
"""Converting a full-size SE-ResNet-101 (random weights) to FP32+FP16 IR: omz-converter against
the old path, side by side.

    python benchmarks/convert.py [--repeat N] [--old-venv DIR] [--work DIR] [--keep]

The old path is what openvino-dev's omz_converter does: ``mo`` twice (FP32, then FP16) in a venv
with ``openvino-dev[caffe]==2024.6.0`` (pure-Python protobuf 3.20). That venv is created at
--old-venv (default /tmp/omz-old-venv) when missing. Ours: ``omz-converter --force`` (one MO run
with the upb caffe_pb2, FP16 derived, IR checked against the model card), then reruns with the
IR up to date. Runs are interleaved, N rounds; peak RSS is each command's own process tree's
(``wait4`` ru_maxrss: the largest single process, MO or the converter). Also checks that both
paths write byte-identical .bin files.

Targets: time <= 0.20x, peak memory <= 0.40x the old path's, an up-to-date rerun <= 1 s.
Exits 1 if a command fails or a target is missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
PROTOTXT = REPO.parent / "shared" / "fixtures" / "se-resnet-101" / "SE-ResNet-101.prototxt"
NAME = "se-resnet-101"
TARGETS = {"time": 0.20, "memory": 0.40, "rerun_seconds": 1.0}
BIN = Path(sys.executable).parent


def run(argv: list, env: dict, log: Path) -> tuple:
    """(seconds, peak RSS bytes) of one command; its output goes to ``log``."""
    start = time.perf_counter()
    with open(log, "ab") as stream:
        proc = subprocess.Popen(argv, stdout=stream, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed (exit {proc.returncode}): {' '.join(map(str, argv))}\nsee {log}")
    return elapsed, usage.ru_maxrss * 1024


def ensure_old_venv(path: Path) -> Path:
    mo = path / "bin" / "mo"
    if mo.exists():
        return mo
    print(f"creating the old-path venv {path} (openvino-dev[caffe]==2024.6.0) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(path / "bin" / "pip"), "install", "-q", "openvino-dev[caffe]==2024.6.0"], check=True)
    return mo


def package_version(python: Path, name: str) -> str:
    out = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def prepare(work: Path) -> tuple:
    """A registry entry (the built-in one, with our random caffemodel's size and hash) and the
    download folder holding the files, verified as omz-downloader leaves them."""
    from helpers_caffe import file_digest, write_caffemodel
    from omz_tools.download import verified
    from omz_tools.registry import Registry
    dl = work / "dl" / "public" / NAME
    dl.mkdir(parents=True, exist_ok=True)
    caffemodel = dl / f"{NAME}.caffemodel"
    if not caffemodel.exists():
        print("writing a 198 MB caffemodel with random weights ...", flush=True)
        write_caffemodel(PROTOTXT, caffemodel, work / "cache", seed=101)
    shutil.copyfile(PROTOTXT, dl / f"{NAME}.prototxt")
    entry = yaml.safe_load((REPO / "models" / "public" / NAME / "model.yml").read_text())
    for file in entry["files"]:
        file["size"], file["sha256"] = file_digest(dl / file["name"])
    folder = work / "registry" / "public" / NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yml").write_text(yaml.safe_dump(entry, sort_keys=False))
    model = Registry([work / "registry"]).load(NAME)
    for model_file in model.files:
        assert verified(dl / model_file.name, model_file, full_check=True)
    return work / "registry", work / "dl", model


def old_commands(old_mo: Path, dl: Path, out: Path, model) -> list:
    """omz_converter's two MO commands (FP32, FP16) for the entry."""
    import string
    variables = {"dl_dir": str(dl / model.subdirectory), "conv_dir": str(out / model.subdirectory),
                 "config_dir": str(model.config_dir), "mo_dir": "", "mo_ext_dir": ""}
    args = [string.Template(a).substitute(variables) for a in model.mo_args]
    python = old_mo.parent / "python"
    return [[str(python), "--", str(old_mo), "--framework=caffe", f"--output_dir={out / model.subdirectory / p}",
             f"--model_name={NAME}", *args, f"--compress_to_fp16={p == 'FP16'}"] for p in ("FP32", "FP16")]


def fmt_mb(value: float) -> str:
    return f"{value / 2**20:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds (default 1; each old round "
                                                              "takes about 5 minutes here)")
    parser.add_argument("--reruns", type=int, default=5, help="timed up-to-date reruns (default 5)")
    parser.add_argument("--old-venv", type=Path, default=Path("/tmp/omz-old-venv"))
    parser.add_argument("--work", type=Path, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    if not PROTOTXT.exists():
        sys.exit(f"needs the real prototxt at {PROTOTXT}")

    old_mo = ensure_old_venv(args.old_venv)
    work = args.work or Path(tempfile.mkdtemp(prefix="omz-bench-convert-"))
    work.mkdir(parents=True, exist_ok=True)
    registry, dl, model = prepare(work)
    env = {k: v for k, v in os.environ.items() if k not in ("OMZ_REGISTRY", "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION")}
    env["CI"] = "true"
    env["XDG_CACHE_HOME"] = str(work / "cache")
    converter = [str(BIN / "omz-converter"), "--name", NAME, "--registry", str(registry), "-d", str(dl)]
    log = work / "bench.log"

    ours_t, ours_m, old_t, old_m, mo_t, mo_m, old_mo_t = [], [], [], [], [], [], []
    for round_ in range(args.repeat):
        out_old, out_new = work / f"old{round_}", work / f"new{round_}"
        seconds, peak = 0.0, 0
        for cmd in old_commands(old_mo, dl, out_old, model):
            s, m = run(cmd, env, log)
            old_mo_t.append(s)
            seconds, peak = seconds + s, max(peak, m)
        old_t.append(seconds)
        old_m.append(peak)
        print(f"round {round_ + 1}: old path {seconds:.1f} s, {fmt_mb(peak)} MB", flush=True)
        s, m = run([*converter, "-o", str(out_new), "--force"], env, log)
        ours_t.append(s)
        ours_m.append(m)
        import json
        record = json.loads((out_new / model.subdirectory / "FP32" / ".omz_converted.json").read_text())
        mo_t.append(record["mo_seconds"])
        mo_m.append(record["mo_peak_rss_bytes"])
        print(f"round {round_ + 1}: omz-converter {s:.1f} s, {fmt_mb(m)} MB", flush=True)
        for precision in ("FP32", "FP16"):
            a = (out_old / model.subdirectory / precision / f"{NAME}.bin").read_bytes()
            b = (out_new / model.subdirectory / precision / f"{NAME}.bin").read_bytes()
            if a != b:
                sys.exit(f"{precision} .bin differs between the old path and omz-converter")
        if round_ < args.repeat - 1:
            shutil.rmtree(out_old)
            shutil.rmtree(out_new)
    reruns = [run([*converter, "-o", str(work / f"new{args.repeat - 1}")], env, log)[0] for _ in range(args.reruns)]

    med = statistics.median
    old_python = old_mo.parent / "python"
    print()
    print(f"se-resnet-101, random weights ({(dl / model.subdirectory / (NAME + '.caffemodel')).stat().st_size:,} "
          f"bytes), FP32+FP16, {os.cpu_count()} CPUs, {args.repeat} round(s), medians:")
    print(f"  old: openvino-dev {package_version(old_python, 'openvino-dev')}, protobuf "
          f"{package_version(old_python, 'protobuf')} (pure Python); ours: protobuf "
          f"{package_version(Path(sys.executable), 'protobuf')} (upb)")
    print()
    rows = [
        ("old path: mo FP32 + mo FP16", med(old_t), med(old_m), 1.0, 1.0),
        ("omz-converter (1 MO run + FP16 + checks)", med(ours_t), med(ours_m), med(ours_t) / med(old_t),
         med(ours_m) / med(old_m)),
        ("  of which: MO with the upb caffe_pb2", med(mo_t), med(mo_m), None, None),
        ("  vs one old mo run (pure-Python protobuf)", med(old_mo_t), med(old_m), med(mo_t) / med(old_mo_t),
         med(mo_m) / med(old_m)),
        ("omz-converter rerun, IR up to date", med(reruns), None, med(reruns) / med(old_t), None),
    ]
    print(f"| {'what':44} | {'time s':>8} | {'peak RSS MB':>11} | {'time ratio':>10} | {'memory ratio':>12} |")
    print(f"|{'-' * 46}|{'-' * 10}:|{'-' * 12}:|{'-' * 11}:|{'-' * 13}:|")
    for what, t, m, tr, mr in rows:
        print(f"| {what:44} | {t:8.2f} | {fmt_mb(m) if m else '':>11} | "
              f"{f'{tr:.3f}x' if tr is not None else '':>10} | {f'{mr:.3f}x' if mr is not None else '':>12} |")
    print()
    missed = []
    if med(ours_t) / med(old_t) > TARGETS["time"]:
        missed.append(f"time ratio {med(ours_t) / med(old_t):.3f} > {TARGETS['time']}")
    if med(ours_m) / med(old_m) > TARGETS["memory"]:
        missed.append(f"memory ratio {med(ours_m) / med(old_m):.3f} > {TARGETS['memory']}")
    if med(reruns) > TARGETS["rerun_seconds"]:
        missed.append(f"rerun {med(reruns):.2f} s > {TARGETS['rerun_seconds']} s")
    print("targets: time <= 0.20x, memory <= 0.40x, rerun <= 1 s: " + ("met" if not missed else
                                                                        "MISSED: " + "; ".join(missed)))
    print("FP32 and FP16 .bin files: byte-identical between the two paths")
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
