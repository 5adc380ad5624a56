#!/usr/bin/env python3
"""Converting a full-size SE-ResNet-101 (random weights) to FP32+FP16 IR: the old path, our Model
Optimizer backend and our native Caffe front end, side by side in one run.

    python benchmarks/convert.py [--repeat N] [--old-venv DIR] [--work DIR] [--keep]

Run it with the interpreter of a venv holding ``omz-model-tools[mo]`` (``.[mo]`` from a checkout) (so both backends are there).
The old path is what openvino-dev's omz_converter does: ``mo`` twice (FP32, then FP16) in a venv
with ``openvino-dev[caffe]==2024.6.0`` (pure-Python protobuf 3.20). That venv is created at
--old-venv (default /tmp/omz-old-venv) when missing. Ours: ``omz-converter --force --backend mo``
(one MO run, FP16 derived, IR checked against the model card) and ``--backend native`` (the
native front end in-process, same FP16 derivation and checks), then reruns with the IR up to
date. Runs are interleaved, N rounds; peak RSS is the largest single process of each command's
tree, MO or the converter (/usr/bin/time: ru_maxrss from a small parent, see _bench.measure).
Checks that the MO backend writes the old path's .bin byte for byte, and compares the inference latency of the native IRs with MO's
(FP32 and FP16; same input, 50 runs each, interleaved, median; compiled with the CPU plugin's
defaults) and their top-5 (compiled for f32 inference: this CPU runs bf16 by default, where the two
graphs round differently). The floor: reading the caffemodel and writing
the FP32 and FP16 .bin files (fsynced).

Targets: native <= 0.03x the old path's time and <= 0.25x its peak memory; native FP32 IR latency
within 3 % of MO's; the same top-5 in both precisions; an up-to-date rerun <= 1 s. Exits 1 if a
command fails or a target is missed.
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

import _bench  # benchmarks/_bench.py (this folder is on sys.path)


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
PROTOTXT = REPO.parent / "shared" / "fixtures" / "se-resnet-101" / "SE-ResNet-101.prototxt"
NAME = "se-resnet-101"
TARGETS = {"time": 0.03, "memory": 0.25, "latency": 0.03, "rerun_seconds": 1.0}
BIN = Path(sys.executable).parent


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


def protobuf_backend() -> str:
    from google.protobuf.internal import api_implementation
    return {"python": "pure Python"}.get(api_implementation.Type(), api_implementation.Type())


def prepare(work: Path) -> tuple:
    """A registry entry (the built-in one, with our random caffemodel's size and hash) and the
    download folder holding the files, verified as omz-downloader leaves them."""
    from helpers_caffe import register_se_resnet, write_caffemodel
    from omz_tools.download import verified
    from omz_tools.registry import Registry
    dl = work / "dl" / "public" / NAME
    dl.mkdir(parents=True, exist_ok=True)
    caffemodel = dl / f"{NAME}.caffemodel"
    if not caffemodel.exists():
        print("writing a 198 MB caffemodel with random weights ...", flush=True)
        write_caffemodel(PROTOTXT, caffemodel, work / "cache", seed=101)
    shutil.copyfile(PROTOTXT, dl / f"{NAME}.prototxt")
    register_se_resnet(dl, work / "registry")
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


def latencies(native_xml: Path, mo_xml: Path, runs: int = 50) -> tuple:
    """(native, MO) median seconds of one synchronous inference of each IR on the same input,
    interleaved, compiled with the CPU plugin's defaults (what users get: bf16 on CPUs that have
    it), and whether the two agree on the top-5 when compiled for f32 inference (in bf16 the two
    graphs round differently, so the top-5 of random weights may swap places)."""
    import numpy as np
    import openvino as ov
    core = ov.Core()
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 224, 224)).astype(np.float32)
    requests = [core.compile_model(str(xml), "CPU").create_infer_request() for xml in (native_xml, mo_xml)]
    for request in requests:
        request.infer({"data": x})
    times = ([], [])
    for _ in range(runs):
        for index, request in enumerate(requests):
            start = time.perf_counter()
            request.infer({"data": x})
            times[index].append(time.perf_counter() - start)
    del requests
    f32 = [core.compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}) for xml in (native_xml, mo_xml)]
    top5 = [list(np.argsort(-c({"data": x})[c.output(0)][0])[:5]) for c in f32]
    return statistics.median(times[0]), statistics.median(times[1]), top5[0] == top5[1]


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
    caffemodel = dl / model.subdirectory / f"{NAME}.caffemodel"

    times = {k: [] for k in ("old", "mo", "native", "floor")}
    peaks = {k: [] for k in ("old", "mo", "native")}
    latency = {(p, k): [] for p in ("FP32", "FP16") for k in ("native", "mo")}
    same_top5 = {"FP32": True, "FP16": True}
    for round_ in range(args.repeat):
        outs = {k: work / f"{k}{round_}" for k in ("old", "mo", "native")}
        seconds, peak = 0.0, 0
        for cmd in old_commands(old_mo, dl, outs["old"], model):
            s, m = _bench.run_logged(cmd, env, log)
            seconds, peak = seconds + s, max(peak, m)
        times["old"].append(seconds)
        peaks["old"].append(peak)
        print(f"round {round_ + 1}: old path {seconds:.1f} s, {fmt_mb(peak)} MB", flush=True)
        for backend in ("mo", "native"):
            s, m = _bench.run_logged([*converter, "-o", str(outs[backend]), "--force", "--backend", backend], env, log)
            times[backend].append(s)
            peaks[backend].append(m)
            print(f"round {round_ + 1}: omz-converter --backend {backend} {s:.1f} s, {fmt_mb(m)} MB", flush=True)
        for precision in ("FP32", "FP16"):
            a = (outs["old"] / model.subdirectory / precision / f"{NAME}.bin").read_bytes()
            b = (outs["mo"] / model.subdirectory / precision / f"{NAME}.bin").read_bytes()
            if a != b:
                sys.exit(f"{precision} .bin differs between the old path and omz-converter --backend mo")
        bins = [(outs["native"] / model.subdirectory / p / f"{NAME}.bin").stat().st_size for p in ("FP32", "FP16")]
        times["floor"].append(_bench.floor_seconds(caffemodel, bins, work))
        for precision in ("FP32", "FP16"):
            xmls = [outs[k] / model.subdirectory / precision / f"{NAME}.xml" for k in ("native", "mo")]
            native_s, mo_s, same = latencies(*xmls)
            latency[precision, "native"].append(native_s)
            latency[precision, "mo"].append(mo_s)
            same_top5[precision] = same_top5[precision] and same
        if round_ < args.repeat - 1:
            for folder in outs.values():
                shutil.rmtree(folder)
    last = work / f"native{args.repeat - 1}"
    reruns = [_bench.run_logged([*converter, "-o", str(last), "--backend", "native"], env, log)[0]
              for _ in range(args.reruns)]

    med = statistics.median
    old_python = old_mo.parent / "python"
    print()
    print(f"se-resnet-101, random weights ({caffemodel.stat().st_size:,} bytes), FP32+FP16, {os.cpu_count()} CPUs, "
          f"{args.repeat} round(s), medians:")
    print(f"  old: openvino-dev {package_version(old_python, 'openvino-dev')}, protobuf "
          f"{package_version(old_python, 'protobuf')} (pure Python); ours: openvino "
          f"{package_version(Path(sys.executable), 'openvino')}, protobuf "
          f"{package_version(Path(sys.executable), 'protobuf')} ({protobuf_backend()}; Model Optimizer parses "
          "the caffemodel with it, so pure Python makes --backend mo slow)")
    print()
    old_t, old_m = med(times["old"]), med(peaks["old"])
    rows = [
        ("old path: mo FP32 + mo FP16", med(times["old"]), old_m),
        ("omz-converter --backend mo", med(times["mo"]), med(peaks["mo"])),
        ("omz-converter --backend native", med(times["native"]), med(peaks["native"])),
        ("native rerun, IR up to date", med(reruns), None),
        ("floor: read caffemodel, write both .bin", med(times["floor"]), None),
    ]
    print(f"| {'what':40} | {'time s':>8} | {'peak RSS MB':>11} | {'time ratio':>10} | {'memory ratio':>12} |")
    print(f"|{'-' * 42}|{'-' * 10}:|{'-' * 12}:|{'-' * 11}:|{'-' * 13}:|")
    for what, t, m in rows:
        mr = f"{m / old_m:.3f}x" if m else ""
        print(f"| {what:40} | {t:8.2f} | {fmt_mb(m) if m else '':>11} | {t / old_t:9.3f}x | {mr:>12} |")
    print()
    for precision in ("FP32", "FP16"):
        native_p, mo_p = med(latency[precision, "native"]), med(latency[precision, "mo"])
        print(f"inference latency, {precision} IR, CPU defaults, 50 runs each, median: native {native_p * 1e3:.1f} ms, "
              f"MO {mo_p * 1e3:.1f} ms ({(native_p / mo_p - 1) * 100:+.1f} %); same top-5 (f32 inference): "
              f"{'yes' if same_top5[precision] else 'NO'}")
    native_l, mo_l = med(latency["FP32", "native"]), med(latency["FP32", "mo"])
    print("FP32 and FP16 .bin files: byte-identical between the old path and --backend mo")
    print()
    missed = []
    if med(times["native"]) / old_t > TARGETS["time"]:
        missed.append(f"native time ratio {med(times['native']) / old_t:.3f} > {TARGETS['time']}")
    if med(peaks["native"]) / old_m > TARGETS["memory"]:
        missed.append(f"native memory ratio {med(peaks['native']) / old_m:.3f} > {TARGETS['memory']}")
    if abs(native_l / mo_l - 1) > TARGETS["latency"]:
        missed.append(f"latency {(native_l / mo_l - 1) * 100:+.1f} % beyond {TARGETS['latency'] * 100:.0f} %")
    if med(reruns) > TARGETS["rerun_seconds"]:
        missed.append(f"rerun {med(reruns):.2f} s > {TARGETS['rerun_seconds']} s")
    for precision, same in same_top5.items():
        if not same:
            missed.append(f"native and MO {precision} IRs disagree on the top-5 (f32 inference)")
    print("targets: native time <= 0.03x, memory <= 0.25x, latency within 3 %, rerun <= 1 s: "
          + ("met" if not missed else "MISSED: " + "; ".join(missed)))
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
