#!/usr/bin/env python3
"""omz-accuracy-check throughput on a full-size SE-ResNet-101 (random, well-scaled weights) against a
plain loop (cv2.imread + resize + crop, then one synchronous infer per image), for FP32, FP16 and
FP16-INT8; and the FP16-INT8 IR's inference throughput against FP32's.

    python benchmarks/accuracy.py [--images 2000] [--batch 4] [--precisions FP32,FP16,FP16-INT8] [--work DIR]

The model is built once in --work (default /tmp/omz-accuracy-bench; reused when present):
generated caffemodel -> omz_tools.convert (FP32, FP16) -> omz-quantizer on 40 images. The images
are synthetic 500x375 JPEGs with random labels (the figures are meaningless; only speed counts, so
the accuracy check runs with --tolerance 100). Needs ../shared (the real prototxt).

Targets on this machine: omz-accuracy-check >= 1.8x the plain loop; INT8 >= 1.4x FP32 throughput.
Each round also measures the ceiling of any pipeline: inference alone (no decoding) with the same IR,
hint, requests and batch, as a ratio to the plain loop. Not a test; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
PROTOTXT = REPO.parent / "shared" / "fixtures" / "se-resnet-101" / "SE-ResNet-101.prototxt"
NAME = "se-resnet-101"
BIN = Path(sys.executable).parent
TARGETS = {"pipeline": 1.8, "int8": 1.4}


def build(work: Path) -> Path:
    """The converted and quantized model under work/out; returns the registry folder."""
    import omz_tools
    from helpers_accuracy import write_images
    from helpers_caffe import register_se_resnet, write_caffemodel
    registry = work / "registry"
    folder = work / "dl" / "public" / NAME
    if not (work / "out" / "public" / NAME / "FP16-INT8" / f"{NAME}.xml").exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROTOTXT, folder / f"{NAME}.prototxt")
        if not (folder / f"{NAME}.caffemodel").exists():
            write_caffemodel(folder / f"{NAME}.prototxt", folder / f"{NAME}.caffemodel", work / "cache", seed=101)
        register_se_resnet(folder, registry, accuracy_check=True)
        print("converting ...", flush=True)
        omz_tools.convert(NAME, download_dir=work / "dl", output_dir=work / "out", registries=[registry])
        write_images(work / "calib", 40, size=(500, 375), seed=21)
        print("quantizing ...", flush=True)
        subprocess.run([BIN / "omz-quantizer", "--name", NAME, "--registry", registry, "-d", work / "out",
                        "--dataset", work / "calib", "--subset_size", "40"], check=True, stdout=subprocess.DEVNULL)
    return registry


def plain_loop(xml: Path, paths: list) -> tuple:
    """(images/s, images per CPU-second) of the obvious loop: cv2 + a synchronous infer per image
    (compile time excluded)."""
    import cv2
    import openvino as ov
    compiled = ov.Core().compile_model(str(xml), "CPU")
    start, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        image = cv2.resize(cv2.imread(str(path)), (256, 256), interpolation=cv2.INTER_LINEAR)[16:240, 16:240]
        compiled(image.transpose(2, 0, 1)[None].astype(np.float32))
    return len(paths) / (time.perf_counter() - start), len(paths) / (time.process_time() - cpu)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def accuracy_check(registry: Path, work: Path, precision: str, batch: int = None) -> tuple:
    """(images/s from the first to the last image as the tool reports it, wall seconds of the command,
    CPU seconds of the command, start-up included)."""
    start, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run([BIN / "omz-accuracy-check", "--name", NAME, "--registry", registry, "-d", work / "out",
                           "--dataset", work / "images", "--annotation", work / "val.txt", "--precisions", precision,
                           "--tolerance", "100", "--progress_format", "json",
                           *(["--batch", str(batch)] if batch else [])], capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    if proc.returncode != 0:
        sys.exit(f"omz-accuracy-check failed (exit {proc.returncode}):\n{proc.stderr}")
    end = [json.loads(line) for line in proc.stdout.splitlines()][-1]["results"][0]
    return end["images_per_second"], wall, cpu


def infer_throughput(xml: Path, count: int, batch: int, config: dict = None) -> float:
    """Images/s of inference alone with OpenVINO's throughput hint, its optimal number of requests in an
    async queue and ``batch`` images per inference, as omz-accuracy-check runs it (no decoding)."""
    import openvino as ov
    core = ov.Core()
    model = core.read_model(str(xml))
    if batch > 1:
        model.reshape({model.inputs[0]: [batch, 3, 224, 224]})
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", **(config or {})})
    queue = ov.AsyncInferQueue(compiled, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    data = np.random.default_rng(0).uniform(0, 255, (batch, 3, 224, 224)).astype(np.float32)
    for _ in range(len(queue)):  # warm up
        queue.start_async({0: data})
    queue.wait_all()
    runs = max(1, count // batch)
    start = time.perf_counter()
    for _ in range(runs):
        queue.start_async({0: data})
    queue.wait_all()
    return runs * batch / (time.perf_counter() - start)


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="synthetic 500x375 JPEGs (default 2000)")
    parser.add_argument("--infers", type=int, default=100, help="images inferred per precision for INT8 vs FP32")
    parser.add_argument("--batch", type=int, default=4, help="omz-accuracy-check --batch (default 4, its default)")
    parser.add_argument("--precisions", default="FP32,FP16,FP16-INT8")
    parser.add_argument("--rounds", type=int, default=3, help="plain loop and omz-accuracy-check runs per precision")
    parser.add_argument("--work", type=Path, default=Path("/tmp/omz-accuracy-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if not PROTOTXT.exists():
        sys.exit(f"needs the real SE-ResNet-101 prototxt at {PROTOTXT}")
    from helpers_accuracy import write_images
    work = args.work
    registry = build(work)
    paths = sorted((work / "images").glob("*.jpg")) if (work / "images").exists() else []
    if len(paths) != args.images:
        shutil.rmtree(work / "images", ignore_errors=True)
        paths = write_images(work / "images", args.images, size=(500, 375), seed=5)
    rng = np.random.default_rng(0)
    (work / "val.txt").write_text("".join(f"{p.name} {rng.integers(1000)}\n" for p in paths))
    ir = {p: work / "out" / "public" / NAME / p / f"{NAME}.xml" for p in ("FP32", "FP16", "FP16-INT8")}
    rows, ok = [], True
    for precision in args.precisions.split(","):
        # Rounds alternate which of the two runs first, and each round gives its own ratio: the machine
        # is shared, and its load moves the figures by up to 2x from one minute to the next.
        plains, ours, walls, ratios, loads, per_cpu, ceilings = [], [], [], [], [os.getloadavg()[0]], [], []
        for round_ in range(args.rounds):
            if round_ % 2:
                ours_, wall, cpu = accuracy_check(registry, work, precision, args.batch)
                plain, plain_cpu = plain_loop(ir[precision], paths)
            else:
                plain, plain_cpu = plain_loop(ir[precision], paths)
                ours_, wall, cpu = accuracy_check(registry, work, precision, args.batch)
            # The ceiling of any pipeline on this machine: inference alone, nothing decoded, same IR,
            # hint, requests and batch as omz-accuracy-check.
            ceiling = infer_throughput(ir[precision], args.infers, args.batch)
            loads.append(os.getloadavg()[0])
            plains.append(plain), ours.append(ours_), walls.append(len(paths) / wall), ratios.append(ours_ / plain)
            per_cpu.append((plain_cpu, len(paths) / cpu)), ceilings.append(ceiling / plain)
            print(f"{precision} round {round_ + 1}: plain {plain:.2f}/s, omz-accuracy-check {ours_:.2f}/s, "
                  f"{ours_ / plain:.2f}x; inference alone {ceiling:.2f}/s = {ceiling / plain:.2f}x plain; "
                  f"per CPU-second {plain_cpu:.2f} vs {len(paths) / cpu:.2f} (start-up included); "
                  f"load {loads[-1]:.1f}", flush=True)
        ratio = float(np.median(ratios))
        ok &= ratio >= TARGETS["pipeline"]
        rows.append(f"| {precision} | {np.median(plains):.2f} | {np.median(ours):.2f} | {ratio:.2f}x "
                    f"({min(ratios):.2f}-{max(ratios):.2f}) | {np.median(ceilings):.2f}x | {np.median(walls):.2f} "
                    f"| {np.median([p for p, _ in per_cpu]):.2f} / {np.median([o for _, o in per_cpu]):.2f} "
                    f"| {min(loads):.1f}-{max(loads):.1f} |")
    before = load()
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    triples = [(infer_throughput(ir["FP32"], args.infers, args.batch),
                infer_throughput(ir["FP32"], args.infers, args.batch, f32),
                infer_throughput(ir["FP16-INT8"], args.infers, args.batch)) for _ in range(args.rounds)]
    fp32, fp32_f32, int8 = (float(np.median(v)) for v in zip(*triples))
    int8_ratios = [c / a for a, _, c in triples]
    f32_ratios = [c / b for _, b, c in triples]
    import openvino as ov
    default = ov.Core().compile_model(str(ir["FP32"]), "CPU").get_property("INFERENCE_PRECISION_HINT")
    default = default.get_type_name()
    ok &= float(np.median(int8_ratios)) >= TARGETS["int8"]
    print(f"\n{len(paths)} synthetic 500x375 JPEGs, se-resnet-101 (random weights), --batch {args.batch}, "
          f"medians of {args.rounds} rounds\n")
    print("| precision | plain loop (images/s) | omz-accuracy-check (images/s) | ratio (target >= 1.8x; range) "
          "| ceiling: inference alone / plain loop | omz-accuracy-check incl. start-up (images/s) "
          "| images per CPU-second: plain / ours (incl. start-up) | 1-min load average |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print("\n".join(rows))
    print(f"\nInference alone ({args.infers} images, THROUGHPUT hint, batch {args.batch}): FP32 {fp32:.2f}/s, "
          f"FP16-INT8 {int8:.2f}/s, ratio {np.median(int8_ratios):.2f}x "
          f"({min(int8_ratios):.2f}-{max(int8_ratios):.2f}; "
          f"target >= 1.4x); the CPU runs FP32 IR in {default} by default; FP32 in f32 {fp32_f32:.2f}/s, "
          f"INT8 {np.median(f32_ratios):.2f}x that ({min(f32_ratios):.2f}-{max(f32_ratios):.2f}); "
          f"load {before} -> {load()}")
    if not args.keep and args.work == Path("/tmp/omz-accuracy-bench"):
        pass  # the built model is reused by the next run; delete the folder by hand
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
