#!/usr/bin/env python3
"""Start-up time of our info dumper against openvino-dev 2024.6's omz_info_dumper, side by side.

    python benchmarks/startup.py [--repeat N] [--their-model NAME]

Runs each command N times (after one untimed warm-up run that also fills the .pyc caches), in
interleaved rounds so that both tools see the same machine load, and prints the median wall-clock
time of each and the ratio ours/theirs. Target: ours <= 0.2x theirs. openvino-dev's tools run with
CI=true (no telemetry prompt). Exits 1 if a command fails, 2 if openvino-dev is not installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import _bench

TARGET_RATIO = 0.2
BIN = Path(sys.executable).parent


def tool(name: str) -> str | None:
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per command (default 15)")
    parser.add_argument("--their-model", default="resnet-50-tf",
                        help="the model openvino-dev's omz_info_dumper is asked about (se-resnet-101 is not in its "
                             "2024.6 registry); default resnet-50-tf")
    args = parser.parse_args()

    ours, theirs = tool("omz-info-dumper"), tool("omz_info_dumper")
    if ours is None:
        sys.exit("omz-info-dumper is not installed: pip install -e .")
    if theirs is None:
        print("openvino-dev's omz_info_dumper is not installed: pip install openvino-dev==2024.6.0", file=sys.stderr)
        sys.exit(2)

    env = {k: v for k, v in os.environ.items() if k != "OMZ_REGISTRY"}
    env["CI"] = "true"
    pairs = [
        ("--name (one model)", [ours, "--name", "se-resnet-101"], [theirs, "--name", args.their_model]),
        ("--print_all", [ours, "--print_all"], [theirs, "--print_all"]),
    ]
    commands = [argv for _, a, b in pairs for argv in (a, b)]
    for argv in commands:  # warm-up: .pyc files, page cache
        _bench.wall_time(argv, env)
    times: dict = {tuple(argv): [] for argv in commands}
    for _ in range(args.repeat):
        for argv in commands:
            times[tuple(argv)].append(_bench.wall_time(argv, env))

    def show(argv: list) -> str:
        return " ".join([Path(argv[0]).name, *argv[1:]])

    medians = _bench.medians(times)
    rows = []
    for label, our_argv, their_argv in pairs:
        our_median, their_median = medians[tuple(our_argv)], medians[tuple(their_argv)]
        rows.append((label, show(our_argv), our_median, show(their_argv), their_median, our_median / their_median))

    print(f"Start-up times, median of {args.repeat} runs each (Python {sys.version.split()[0]}, {sys.platform})")
    header = ("case", "ours", "median", "openvino-dev 2024.6", "median", "ours/theirs")
    widths = [max(len(header[i]), *(len(r[i]) if isinstance(r[i], str) else 8 for r in rows)) for i in range(6)]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line)
    print("-|-".join("-" * w for w in widths))
    failed = False
    for label, ours_cmd, our_median, theirs_cmd, their_median, ratio in rows:
        mark = "ok" if ratio <= TARGET_RATIO else "MISSED"
        failed |= ratio > TARGET_RATIO
        cells = [label, ours_cmd, f"{our_median * 1000:.0f} ms", theirs_cmd, f"{their_median * 1000:.0f} ms",
                 f"{ratio:.3f}x {mark}"]
        print(" | ".join(c.ljust(w) for c, w in zip(cells, widths)))
    print(f"target: ours <= {TARGET_RATIO}x theirs -> {'missed' if failed else 'met'}")


if __name__ == "__main__":
    main()
