#!/usr/bin/env python3
"""The ovc backend (openvino.convert_model in a child process of the converter) against Model Optimizer 2024.6
(``--backend mo``) on ONNX and TensorFlow models, through ``omz-converter`` as a user runs it.

    python benchmarks/frameworks.py --mo-python .venv/bin/python --mo-tf-python .venv-mo-tf/bin/python \
        [--repeat N] [--runs N] [--keep]

Run it with the interpreter of .ci/run's frameworks venv (onnx, tensorflow-cpu, the newest openvino,
``omz-model-tools`` and pytest: the small models are the tests' own, tests/helpers_frameworks.py).
``--mo-python``: a venv with ``omz-model-tools[mo]`` (MO for ONNX); ``--mo-tf-python``: a venv with
``openvino-dev==2024.6.0`` and ``tensorflow-cpu<2.18`` (MO imports tensorflow for TensorFlow models).
Models: the tests' classifiers (ONNX; TensorFlow frozen graph) and one ResNet-50-sized graph per
framework, the same random weights written as ONNX and as a frozen TensorFlow graph (bottleneck
blocks 3-4-6-3, 25.5 M parameters, 224x224 input), each with MO's mean/scale/reverse arguments.
Each conversion is FP32 into a fresh folder, runs interleaved, N rounds, median; peak RSS is the
largest process of the command's tree (/usr/bin/time), and, from the IR's record, the conversion
process's own (the ovc child's, Model Optimizer's): the converter's IR check, the same for both
backends, is the rest. IR latency: both FP32 IRs compiled with the
CPU plugin's defaults, --runs inferences each (30), interleaved, median.

Targets (issue 18): ovc <= 0.5x MO's time (the whole omz-converter run), its conversion process's
peak <= 1.0x Model Optimizer's, IR latency within 3 %. Prints the table and which targets were
missed; exits 1 if a conversion fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import _bench  # noqa: E402

TARGETS = {"time": 0.5, "memory": 1.0, "latency": 0.03}
MEAN, STD = [123.7, 116.3, 103.5], [58.4, 57.1, 57.4]
STAGES = [(64, 256, 3, 1), (128, 512, 4, 2), (256, 1024, 6, 2), (512, 2048, 3, 2)]


def resnet50_spec(seed: int = 0) -> list:
    """Layers of a ResNet-50 without batch norm, as ("conv", name, input, W, b, stride, relu) /
    ("add", name, a, b) / ("pool", name, input) / ("fc", name, input, W, b): He-scaled weights, the
    residual branch's last conv scaled down so activations stay finite."""
    rng = np.random.default_rng(seed)
    layers = []

    def conv(name, src, cin, cout, k, stride=1, relu=True, gain=1.0):
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2 / (cin * k * k)) * gain).astype(np.float32)
        layers.append(("conv", name, src, w, (rng.standard_normal(cout) * 0.01).astype(np.float32), stride, relu))
        return name

    x = conv("stem", "input", 3, 64, 7, 2)
    layers.append(("pool", "stem_pool", x))
    x, cin = "stem_pool", 64
    for s, (mid, out, blocks, stride) in enumerate(STAGES):
        for b in range(blocks):
            step = stride if b == 0 else 1
            a = conv(f"s{s}b{b}a", x, cin, mid, 1)
            a = conv(f"s{s}b{b}b", a, mid, mid, 3, step)
            a = conv(f"s{s}b{b}c", a, mid, out, 1, relu=False, gain=0.3)
            short = conv(f"s{s}b{b}p", x, cin, out, 1, step, relu=False) if b == 0 else x
            layers.append(("add", f"s{s}b{b}", a, short))
            x, cin = f"s{s}b{b}", out
    layers.append(("fc", "logits", x, (rng.standard_normal((1000, 2048)) * 0.02).astype(np.float32),
                   np.zeros(1000, np.float32)))
    return layers


def write_resnet_onnx(path: Path, layers: list) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits = [], []
    for layer in layers:
        kind, name = layer[0], layer[1]
        if kind == "conv":
            _, _, src, w, b, stride, relu = layer
            k = w.shape[2]
            inits += [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(b, f"{name}_b")]
            nodes.append(helper.make_node("Conv", [src, f"{name}_w", f"{name}_b"], [f"{name}_c" if relu else name],
                                          pads=[k // 2] * 4, strides=[stride] * 2))
            if relu:
                nodes.append(helper.make_node("Relu", [f"{name}_c"], [name]))
        elif kind == "pool":
            nodes.append(helper.make_node("MaxPool", [layer[2]], [name], kernel_shape=[3, 3], strides=[2, 2],
                                          pads=[1, 1, 1, 1]))
        elif kind == "add":
            nodes += [helper.make_node("Add", [layer[2], layer[3]], [f"{name}_s"]),
                      helper.make_node("Relu", [f"{name}_s"], [name])]
        else:
            _, _, src, w, b = layer
            inits += [numpy_helper.from_array(w, "fc_w"), numpy_helper.from_array(b, "fc_b")]
            nodes += [helper.make_node("GlobalAveragePool", [src], ["gap"]),
                      helper.make_node("Flatten", ["gap"], ["feat"]),
                      helper.make_node("Gemm", ["feat", "fc_w", "fc_b"], [name], transB=1),
                      helper.make_node("Softmax", [name], ["prob"], axis=1)]
    graph = helper.make_graph(nodes, "resnet50", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                [1, 3, 224, 224])],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1000])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_resnet_tf(folder: Path, layers: list) -> Path:
    """The same network in NHWC as a frozen GraphDef (weights are constants of the graph)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 224, 224, 3], tf.float32, name="input")])
    def net(x):
        values = {"input": x}
        for layer in layers:
            kind, name = layer[0], layer[1]
            if kind == "conv":
                _, _, src, w, b, stride, relu = layer
                y = tf.nn.conv2d(values[src], tf.constant(np.transpose(w, (2, 3, 1, 0))), stride, "SAME") + b
                values[name] = tf.nn.relu(y) if relu else y
            elif kind == "pool":
                values[name] = tf.nn.max_pool2d(values[layer[2]], 3, 2, "SAME")
            elif kind == "add":
                values[name] = tf.nn.relu(values[layer[2]] + values[layer[3]])
            else:
                _, _, src, w, b = layer
                feat = tf.reduce_mean(values[src], [1, 2])
                return tf.nn.softmax(tf.matmul(feat, tf.constant(w.T.copy())) + b, name="prob")

    folder.mkdir(parents=True, exist_ok=True)
    tf.io.write_graph(net.get_concrete_function().graph.as_graph_def(), str(folder), "graph.pb", as_text=False)
    return folder / "graph.pb"


def preprocessing(name: str) -> list:
    return [f"--mean_values={name}[{','.join(map(str, MEAN))}]", f"--scale_values={name}[{','.join(map(str, STD))}]",
            "--reverse_input_channels"]


def prepare(work: Path) -> list:
    """Registers the models under work/registry: [(name, framework, MO's interpreter key)]."""
    from helpers_frameworks import register, write_frozen_graph, write_onnx
    registry, dl = work / "registry", work / "dl"
    onnx_small = write_onnx(dl / "public" / "small-onnx" / "cls.onnx")
    register(registry, dl, "small-onnx", "onnx", [onnx_small], ["--input_model=$dl_dir/cls.onnx",
                                                                *preprocessing("data")],
             input_info=[{"name": "data", "shape": [1, 3, 16, 16], "layout": "NCHW"}])
    tf_small = write_frozen_graph(dl / "public" / "small-tf")
    register(registry, dl, "small-tf", "tf", [tf_small], ["--input_model=$dl_dir/graph.pb", "--output=prob",
                                                          *preprocessing("input")],
             input_info=[{"name": "input", "shape": [1, 16, 16, 3], "layout": "NHWC"}])
    layers = resnet50_spec()
    onnx_big = write_resnet_onnx(dl / "public" / "resnet50-onnx" / "resnet50.onnx", layers)
    register(registry, dl, "resnet50-onnx", "onnx", [onnx_big], ["--input_model=$dl_dir/resnet50.onnx",
                                                                 *preprocessing("input")],
             input_info=[{"name": "input", "shape": [1, 3, 224, 224], "layout": "NCHW"}])
    tf_big = write_resnet_tf(dl / "public" / "resnet50-tf", layers)
    register(registry, dl, "resnet50-tf", "tf", [tf_big], ["--input_model=$dl_dir/graph.pb", "--output=prob",
                                                           *preprocessing("input")],
             input_info=[{"name": "input", "shape": [1, 224, 224, 3], "layout": "NHWC"}])
    return [("small-onnx", "onnx"), ("small-tf", "tf"), ("resnet50-onnx", "onnx"), ("resnet50-tf", "tf")]


def command(work: Path, model: str, out: Path, backend: str, mo_python: str) -> list:
    cmd = [sys.executable, "-m", "omz_tools.cli.converter", "--name", model, "--registry", str(work / "registry"),
           "-d", str(work / "dl"), "-o", str(out), "--precisions", "FP32", "--backend", backend]
    return cmd + (["-p", mo_python] if backend == "mo" else [])


def child_peak_mib(out: Path, model: str, backend: str) -> float:
    """The conversion process's own peak (the ovc child's, or Model Optimizer's), from the IR's record."""
    import json
    record = json.loads((out / "public" / model / "FP32" / ".omz_converted.json").read_text())
    return record[f"{backend}_peak_rss_bytes"] / 2**20


def latencies(ovc_xml: Path, mo_xml: Path, runs: int = 30) -> tuple:
    """Median seconds of one inference of each IR (CPU defaults), interleaved."""
    import openvino as ov
    core = ov.Core()
    compiled = [core.compile_model(core.read_model(str(xml)), "CPU") for xml in (ovc_xml, mo_xml)]
    shape = list(compiled[0].inputs[0].get_shape())
    x = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    requests = [c.create_infer_request() for c in compiled]
    for request in requests:
        request.infer([x])
    times = ([], [])
    for _ in range(runs):
        for request, series in zip(requests, times):
            start = time.perf_counter()
            request.infer([x])
            series.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mo-python", required=True, help="python of a venv with omz-model-tools[mo]")
    parser.add_argument("--mo-tf-python", required=True, help="python of a venv with openvino-dev 2024.6 and tensorflow")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30, help="inferences of each IR for the latency")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "CI": "true"}
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}, {os.cpu_count()} CPUs")
    with _bench.work_folder("frameworks", args.keep) as work:
        models = prepare(work)
        samples = {(m, b, k): [] for m, _ in models for b in ("ovc", "mo") for k in ("s", "mb", "child")}
        for round_ in range(args.repeat):
            for model, framework in models:
                mo_python = args.mo_tf_python if framework == "tf" else args.mo_python
                for backend in ("ovc", "mo"):
                    out = work / f"out-{backend}-{round_}"
                    seconds, mb = _bench.measure(command(work, model, out, backend, mo_python), env, work)
                    samples[model, backend, "s"].append(seconds)
                    samples[model, backend, "mb"].append(mb)
                    samples[model, backend, "child"].append(child_peak_mib(out, model, backend))
        med = _bench.medians(samples)
        rows, missed = [], []
        for model, _ in models:
            xml = lambda b: work / f"out-{b}-0" / "public" / model / "FP32" / f"{model}.xml"  # noqa: E731
            ovc_l, mo_l = latencies(xml("ovc"), xml("mo"), args.runs)
            t, m, lat = (med[model, "ovc", "s"] / med[model, "mo", "s"],
                         med[model, "ovc", "child"] / med[model, "mo", "child"], ovc_l / mo_l - 1)
            rows.append([model, f"{med[model, 'ovc', 's']:.1f}", f"{med[model, 'mo', 's']:.1f}", f"{t:.2f}x",
                         f"{med[model, 'ovc', 'child']:.1f}", f"{med[model, 'mo', 'child']:.1f}", f"{m:.3f}x",
                         f"{med[model, 'ovc', 'mb']:.1f} / {med[model, 'mo', 'mb']:.1f}",
                         f"{ovc_l * 1e3:.2f}", f"{mo_l * 1e3:.2f}", f"{lat * 100:+.1f} %"])
            missed += [f"{model} time {t:.2f}x"] * (t > TARGETS["time"]) + [f"{model} memory {m:.3f}x"] * (
                m > TARGETS["memory"]) + [f"{model} latency {lat * 100:+.1f} %"] * (abs(lat) > TARGETS["latency"])
        _bench.print_table(["model", "ovc s", "MO s", "time", "ovc child MiB", "MO MiB", "memory",
                            "whole run MiB, ovc / MO", "ovc ms", "MO ms", "latency"], rows)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.repeat} rounds, "
          f"{args.runs} inferences, medians")
    print("targets: ovc time <= 0.5x MO's, memory <= 1.0x, IR latency within 3 %: " +
          ("all met" if not missed else "missed: " + "; ".join(missed)))


if __name__ == "__main__":
    main()
