#!/usr/bin/env python3
"""The native Caffe front end's time against the layer count: chains of Dropout layers.

    python benchmarks/caffe_layers.py [--counts 20000,100000] [--runs 1]

Per count, a chain (each layer reads the previous one's top) and an in-place run (every layer reads
and writes "data"), converted in this process: reading (protobuf's text parser, phase rules, blob
versions) and building the openvino.Model are timed apart, median of --runs. The last column is the
build's microseconds per layer: flat when the build is linear in the layer count (a scan of every
layer per layer output made 20,000 layers take minutes). Not a test; never run in CI.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def chain(count: int, in_place: bool) -> str:
    lines = ['name: "layers"',
             'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }']
    for i in range(count):
        bottom = "data" if in_place or i == 0 else f"d{i - 1}"
        top = "data" if in_place else f"d{i}"
        lines.append(f'layer {{ name: "drop{i}" type: "Dropout" bottom: "{bottom}" top: "{top}" }}')
    return "\n".join(lines) + "\n"


def measure(path: Path, output: str) -> tuple:
    from omz_tools.convert.caffe import build, mo_args, reader
    began = time.perf_counter()
    net = reader.read_net(path, None)
    read = time.perf_counter() - began
    options = mo_args.parse([f"--input_proto={path}", "--input_model=unused.caffemodel", f"--output={output}"])
    began = time.perf_counter()
    build.build(net, options)
    return read, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="20000,100000", help="layer counts, comma-separated")
    parser.add_argument("--runs", type=int, default=1, help="timed runs per case (median)")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs\n")
    print("| layers | form | prototxt | read (s) | build (s) | build µs/layer |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as work:
        for count in (int(c) for c in args.counts.split(",")):
            for in_place in (False, True):
                path = Path(work) / f"{count}-{in_place}.prototxt"
                path.write_text(chain(count, in_place))
                output = "data" if in_place else f"d{count - 1}"
                runs = [measure(path, output) for _ in range(args.runs)]
                read = statistics.median(r for r, _ in runs)
                built = statistics.median(b for _, b in runs)
                print(f"| {count:,} | {'in place' if in_place else 'chain'} | {path.stat().st_size / 1e6:.1f} MB | "
                      f"{read:.1f} | {built:.1f} | {built / count * 1e6:.0f} |")


if __name__ == "__main__":
    main()
