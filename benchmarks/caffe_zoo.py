#!/usr/bin/env python3
"""Converting built-in Caffe models at full size (random weights) natively and with Model Optimizer.

    python benchmarks/caffe_zoo.py [--models a,b,...] [--repeat N] [--latency-runs N] [--work DIR] [--keep]

Models: the upstream prototxts in ../shared/fixtures (mobilenet-ssd, mtcnn-p, densenet-121,
squeezenet1.1, googlenet-v1, se-resnext-50, Sphereface, se-resnet-101) and VGG-19, whose well-known
deploy prototxt (16 3x3 convolutions, three fully connected layers; a 548 MiB caffemodel) is written
here. Each gets a caffemodel with random, well-scaled weights (tests/helpers_caffe.py; kept in the
work folder, so --work reuses them) and a registry entry: the built-in model.yml with those files
(the prototxt already post-processed). Per model and round, interleaved: ``omz-converter --force
--backend native`` and ``--backend mo`` (FP32 and FP16, IR checks included: the converter's whole
run), each one's wall time and peak RSS (/usr/bin/time: its largest process); the floor
(reading the caffemodel, writing the FP32 and FP16 .bin files, fsynced); and the inference latency
of the native FP32 IR against MO's (same input, interleaved, median).

Targets: native <= 0.03x MO's time, native peak RSS <= 2.5x the caffemodel's size, native IR latency
within 3 % of MO's. Prints a Markdown table; exits 1 if a command fails or a target is missed.
Run it with the interpreter of a venv holding ``omz-model-tools[mo]``; say the machine's load with
the figures (they are printed first).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _bench  # benchmarks/_bench.py (this folder is on sys.path)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
SHARED = REPO.parent / "shared" / "fixtures"
BIN = Path(sys.executable).parent
TARGETS = {"time": 0.03, "memory": 2.5, "latency": 0.03}
UPSTREAM = {
    "mobilenet-ssd": "caffe_zoo/mobilenet-ssd/mobilenet-ssd.prototxt",
    "mtcnn-p": "caffe_zoo/mtcnn-p/mtcnn-p.prototxt.post",
    "densenet-121": "caffe_zoo/densenet-121/densenet-121.prototxt",
    "squeezenet1.1": "caffe_zoo/squeezenet1.1/squeezenet1.1.prototxt.post",
    "googlenet-v1": "caffe_zoo/googlenet-v1/googlenet-v1.prototxt.post",
    "se-resnext-50": "caffe_zoo/se-resnext-50/se-resnext-50.prototxt",
    "Sphereface": "caffe_zoo/Sphereface/Sphereface.prototxt",
    "se-resnet-101": "se-resnet-101/SE-ResNet-101.prototxt",
}
ALL = [*UPSTREAM, "vgg19"]


def vgg19_prototxt() -> str:
    """VGG-19's deploy prototxt (Simonyan and Zisserman's layer names), input 1x3x224x224."""
    def block(kind, name, bottom, top, param=""):
        return f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" top: "{top}" {param} }}\n'
    text, blob = 'name: "VGG_ILSVRC_19_layers"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 224\n' \
                 'input_dim: 224\n', "data"
    for stage, (count, width) in enumerate(((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)), 1):
        for i in range(1, count + 1):
            name = f"conv{stage}_{i}"
            text += block("Convolution", name, blob, name,
                          f"convolution_param {{ num_output: {width} pad: 1 kernel_size: 3 }}")
            text += block("ReLU", f"relu{stage}_{i}", name, name)
            blob = name
        text += block("Pooling", f"pool{stage}", blob, f"pool{stage}",
                      "pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
        blob = f"pool{stage}"
    for name, width in (("fc6", 4096), ("fc7", 4096)):
        text += block("InnerProduct", name, blob, name, f"inner_product_param {{ num_output: {width} }}")
        text += block("ReLU", f"relu{name[2:]}", name, name) + block("Dropout", f"drop{name[2:]}", name, name,
                                                                       "dropout_param { dropout_ratio: 0.5 }")
        blob = name
    text += block("InnerProduct", "fc8", blob, "fc8", "inner_product_param { num_output: 1000 }")
    return text + block("Softmax", "prob", "fc8", "prob")


def digest(path: Path) -> tuple:
    hasher = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 24), b""):
            hasher.update(chunk)
    return path.stat().st_size, hasher.hexdigest()


def prepare(name: str, work: Path):
    """The entry (built-in model.yml with our files) in work/registry, the files verified in work/dl."""
    import yaml

    import helpers_caffe
    import helpers_caffe_ssd  # noqa: F401 - the SSD layers' numpy references, for the weights' scales
    from omz_tools.download import verified
    from omz_tools.registry import Registry, builtin_registry
    builtin = next(leaf for top in Registry([builtin_registry()]).names()
                   for leaf in Registry([builtin_registry()]).load(top).leaves() if leaf.name == name)
    dl = work / "dl" / builtin.subdirectory
    dl.mkdir(parents=True, exist_ok=True)
    prototxt, caffemodel = dl / f"{name}.prototxt", dl / f"{name}.caffemodel"
    prototxt.write_text(vgg19_prototxt() if name == "vgg19" else (SHARED / UPSTREAM[name]).read_text())
    if not caffemodel.exists():
        print(f"{name}: writing a caffemodel with random weights ...", flush=True)
        helpers_caffe.write_caffemodel(prototxt, caffemodel, seed=len(name))
    entry = yaml.safe_load((builtin.config_dir / "model.yml").read_text())
    entry.pop("postprocessing", None)
    entry["files"] = []
    for path in (prototxt, caffemodel):  # the names the entry's arguments use
        size, sha256 = digest(path)
        entry["files"].append({"name": path.name, "size": size, "sha256": sha256,
                               "source": f"https://example.com/{path.name}"})
    folder = work / "registry" / builtin.subdirectory
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yml").write_text(yaml.safe_dump(entry, sort_keys=False))
    if builtin.composite_model_name:  # shadows the built-in composite, with this one stage
        (folder.parent / "composite-model.yml").write_text(f"task_type: {builtin.task_type}\n")
    [model] = Registry([work / "registry"]).match(name)
    for file in model.files:
        assert verified(dl / file.name, file, full_check=True)
    return model, caffemodel


def latencies(native_xml: Path, mo_xml: Path, runs: int) -> tuple:
    """(native, MO) median seconds of one synchronous inference on the same input, interleaved."""
    import numpy as np
    import openvino as ov
    core = ov.Core()
    requests = [core.compile_model(str(xml), "CPU").create_infer_request() for xml in (native_xml, mo_xml)]
    port = core.read_model(str(mo_xml)).inputs[0]
    x = np.random.default_rng(0).uniform(0, 255, list(port.get_shape())).astype(np.float32)
    feed = {port.get_any_name(): x}
    for request in requests:
        request.infer(feed)
    times = ([], [])
    for _ in range(runs):
        for index, request in enumerate(requests):
            start = time.perf_counter()
            request.infer(feed)
            times[index].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def bench_model(name: str, work: Path, env: dict, args) -> dict:
    model, caffemodel = prepare(name, work)
    converter = [str(BIN / "omz-converter"), "--name", name, "--registry", str(work / "registry"), "-d",
                 str(work / "dl"), "--force"]
    log = work / f"{name}.log"
    samples = {k: [] for k in ("native", "mo", "native_rss", "mo_rss", "floor")}
    outs = {b: work / f"out-{b}" for b in ("native", "mo")}
    for _ in range(args.repeat):
        for backend in ("native", "mo"):
            seconds, rss = _bench.run_logged([*converter, "-o", str(outs[backend]), "--backend", backend], env, log)
            samples[backend].append(seconds)
            samples[f"{backend}_rss"].append(rss)
        ir = outs["native"] / model.subdirectory
        sizes = [(ir / p / f"{name}.bin").stat().st_size for p in ("FP32", "FP16")]
        samples["floor"].append(_bench.floor_seconds(caffemodel, sizes, work))
    result = {k: statistics.median(v) for k, v in samples.items()}
    result["size"] = caffemodel.stat().st_size
    result["lat_native"], result["lat_mo"] = latencies(
        outs["native"] / model.subdirectory / "FP32" / f"{name}.xml",
        outs["mo"] / model.subdirectory / "FP32" / f"{name}.xml", args.latency_runs)
    print(f"{name}: native {result['native']:.2f} s, MO {result['mo']:.2f} s", flush=True)
    return result


def table(results: dict) -> list:
    """Prints the Markdown table; returns the missed targets."""
    print("| model | caffemodel | native FP32+FP16 | MO (omz-converter --backend mo) | native/MO | floor | "
          "native peak RSS | / caffemodel | MO peak RSS | IR latency native/MO |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    missed = []
    for name, r in results.items():
        ratio, memory, latency = r["native"] / r["mo"], r["native_rss"] / r["size"], r["lat_native"] / r["lat_mo"]
        print(f"| {name} | {r['size'] / 2**20:,.1f} MiB | {r['native']:.2f} s | {r['mo']:.2f} s | {ratio:.3f}x | "
              f"{r['floor']:.2f} s | {r['native_rss'] / 2**20:,.0f} MiB | {memory:.2f}x | "
              f"{r['mo_rss'] / 2**20:,.0f} MiB | {latency:.3f} ({r['lat_native'] * 1e3:.2f} / "
              f"{r['lat_mo'] * 1e3:.2f} ms) |")
        missed += [f"{name}: time {ratio:.3f}x MO's"] if ratio > TARGETS["time"] else []
        missed += [f"{name}: peak RSS {memory:.2f}x the caffemodel"] if memory > TARGETS["memory"] else []
        missed += [f"{name}: IR latency {latency:.3f}x MO's IR"] if abs(latency - 1) > TARGETS["latency"] else []
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ALL), help=f"comma-separated subset of {', '.join(ALL)}")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds per model (default 1)")
    parser.add_argument("--latency-runs", type=int, default=30, help="timed inferences per IR (default 30)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a new temporary one); reuses caffemodels")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in ALL]
    if unknown:
        sys.exit(f"unknown models {unknown}; choose from {', '.join(ALL)}")
    missing = [n for n in names if n in UPSTREAM and not (SHARED / UPSTREAM[n]).exists()]
    if missing:
        sys.exit(f"needs the upstream prototxts of {missing} under {SHARED}")
    if not os.path.exists(_bench.TIME):
        sys.exit(f"needs {_bench.TIME} (GNU time) for the peak RSS")
    work = args.work or Path(tempfile.mkdtemp(prefix="omz-bench-caffe-zoo-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("OMZ_REGISTRY", "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION")}
    env.update(CI="true", XDG_CACHE_HOME=str(work / "cache"))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs", flush=True)
    try:
        results = {name: bench_model(name, work, env, args) for name in names}
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        missed = table(results)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if missed:
        print("targets missed: " + "; ".join(missed))
        sys.exit(1)


if __name__ == "__main__":
    main()
