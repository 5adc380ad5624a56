"""S3 cache tier benchmark: a se-resnet-101-sized model (~200 MB) through --cache_dir s3://, against
moto's S3 server and a loopback nginx origin on 127.0.0.1, in one run; and an IR cache hit against
converting.

- cold fill: `omz-downloader --cache_dir s3://...` from the origin, upload included, vs a plain
  `omz-downloader` from the same origin;
- warm hit: `omz-downloader --cache_dir s3://...` into a fresh folder (streamed, hashed, fsynced)
  vs a process doing a plain boto3 `download_file` of the same objects (what `aws s3 cp` does; no
  hashing, no fsync);
- IR: `omz-converter --backend native` of a small SE-ResNet (or --mo: Model Optimizer) with the IR
  in the bucket, vs converting.

    .venv/bin/python benchmarks/s3.py [--size-mb 200] [--runs 3] [--mo] [--keep]
    .venv/bin/python benchmarks/s3.py --se-resnet-101     # the full-size model through Model Optimizer

Needs boto3 and moto[server] (pip install -e '.[s3,test]') and nginx. Prints medians and ratios
as Markdown tables.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import _bench

MODEL = "bench-s3-model"
BOTO_COPY = """import os, sys, boto3
client = boto3.client("s3")
os.makedirs(sys.argv[2])
for key in sys.argv[3:]:
    client.download_file(sys.argv[1], key, os.path.join(sys.argv[2], key.replace("/", "_")))
"""
IR_MODEL = "bench-s3-ir"


def _timed(cmd: list, env: dict) -> float:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return time.monotonic() - start


def _downloads(work, args, moto, env) -> list:
    import statistics
    rows = []
    with _bench.served_ir_model(work, MODEL, 200_000, args.size_mb << 20) as (files, nginx):
        _bench.write_entry(work / "registry", MODEL, _bench.model_yml(MODEL, files, nginx.url, "s3 bench", sha256=True))
        ours = [str(_bench.VENV_BIN / "omz-downloader"), "--name", MODEL, "--registry", str(work / "registry")]
        cold, plain, warm, boto = [], [], [], []
        for i in range(args.runs):
            bucket = moto.new_bucket()
            url = f"s3://{bucket}/omz"
            plain.append(_timed(ours + ["-o", str(work / f"plain{i}")], env))
            cold.append(_timed(ours + ["-o", str(work / f"cold{i}"), "--cache_dir", url], env))
            warm.append(_timed(ours + ["-o", str(work / f"warm{i}"), "--cache_dir", url], env))
            # A process of its own, as `aws s3 cp` would be: boto3's import and client included.
            boto.append(_timed([sys.executable, "-c", BOTO_COPY, bucket, str(work / f"boto{i}"),
                                *moto.keys(bucket)], env))
            shutil.rmtree(work / f"boto{i}")
            for name in ("plain", "cold", "warm"):
                shutil.rmtree(work / f"{name}{i}")
        med = {k: statistics.median(v) for k, v in
               {"cold": cold, "plain": plain, "warm": warm, "boto": boto}.items()}
        rows.append(["cold fill (origin + upload) vs plain download from the origin",
                     f"{med['cold']:.2f} s", f"{med['plain']:.2f} s", f"{med['cold'] / med['plain']:.2f}x"])
        rows.append(["warm hit from the bucket vs boto3 download_file",
                     f"{med['warm']:.2f} s", f"{med['boto']:.2f} s", f"{med['warm'] / med['boto']:.2f}x"])
    return rows


def _ir(work, args, moto, env) -> list:
    sys.path.insert(0, str(_bench.REPO / "tests"))
    from helpers_caffe import (SMALL_CLASSES, SMALL_INPUT_SHAPE, file_digest, small_se_resnet_prototxt,
                               write_caffemodel, write_model_yml)
    src = work / "ir-src"
    src.mkdir()
    (src / f"{IR_MODEL}.prototxt").write_text(small_se_resnet_prototxt())
    write_caffemodel(src / f"{IR_MODEL}.prototxt", src / f"{IR_MODEL}.caffemodel", seed=1)
    dl = work / "ir-dl" / "public" / IR_MODEL
    dl.mkdir(parents=True)
    files = []
    for name in (f"{IR_MODEL}.prototxt", f"{IR_MODEL}.caffemodel"):
        shutil.copy(src / name, dl / name)
        files.append((name, *file_digest(src / name), f"http://127.0.0.1:9/{name}"))
    write_model_yml(work / "ir-reg", IR_MODEL, files, input_shape=SMALL_INPUT_SHAPE, outputs={"prob": [1, SMALL_CLASSES]})
    backend = "mo" if args.mo else "native"
    url = f"s3://{moto.new_bucket()}/ir"
    cmd = [str(_bench.VENV_BIN / "omz-converter"), "--name", IR_MODEL, "--registry", str(work / "ir-reg"),
           "-d", str(work / "ir-dl"), "--backend", backend, "--cache_dir", url]
    fill = _timed(cmd + ["-o", str(work / "ir-fill")], env)
    converting, hit = [], []
    for i in range(args.runs):
        converting.append(_timed(cmd + ["-o", str(work / f"ir-conv{i}"), "--no_ir_cache"], env))
        hit.append(_timed(cmd + ["-o", str(work / f"ir-hit{i}")], env))
    import statistics
    c, h = statistics.median(converting), statistics.median(hit)
    return [[f"IR hit vs converting ({backend} backend, small SE-ResNet; first fill {fill:.2f} s)",
             f"{h:.2f} s", f"{c:.2f} s", f"{h / c:.2f}x"]]


def _se_resnet_101(work, args, moto, env) -> list:
    """The issue's target: a second runner's `converter.py --name se-resnet-101 --backend mo` with the
    IR in the bucket against converting (random weights of the full size, as benchmarks/convert.py)."""
    import convert as convert_bench  # benchmarks/convert.py: the registry entry and verified files
    registry, dl, _ = convert_bench.prepare(work / "se")
    url = f"s3://{moto.new_bucket()}/ir"
    cmd = [str(_bench.VENV_BIN / "converter.py"), "--name", "se-resnet-101", "--registry", str(registry),
           "-d", str(dl), "--backend", "mo", "--cache_dir", url]
    fill = _timed(cmd + ["-o", str(work / "se-fill")], env)
    hit = _timed(cmd + ["-o", str(work / "se-hit")], env)
    converting = _timed(cmd + ["-o", str(work / "se-conv"), "--no_ir_cache"], env)
    return [[f"se-resnet-101, --backend mo: IR hit vs converting (first runner: {fill:.1f} s, upload included)",
             f"{hit:.2f} s", f"{converting:.2f} s", f"{hit / converting:.3f}x"]]


def main() -> None:
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--mo", action="store_true", help="convert with Model Optimizer instead of natively")
    parser.add_argument("--se-resnet-101", action="store_true", dest="se",
                        help="only the full-size se-resnet-101 IR row (Model Optimizer: minutes per conversion)")
    args = parser.parse_args()
    from helpers_s3 import MotoServer
    with _bench.work_folder("s3", args.keep) as work:
        moto = MotoServer(work)
        try:
            env = dict(moto.env(dict(os.environ, CI="true")), NO_PROXY="127.0.0.1", XDG_CACHE_HOME=str(work / "xdg"))
            for name, value in env.items():
                if name.startswith("AWS_"):
                    os.environ[name] = value  # for the plain boto3 client too
            rows = (_se_resnet_101(work, args, moto, env) if args.se
                    else _downloads(work, args, moto, env) + _ir(work, args, moto, env))
        finally:
            moto.stop()
    _bench.print_table(["run", "ours", "baseline", "ratio"], rows)


if __name__ == "__main__":
    main()
