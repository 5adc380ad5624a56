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

import os
import shutil
from pathlib import Path

import _bench

MODEL = "bench-download-model"


def main() -> None:
    args = _bench.size_arguments(__doc__.splitlines()[0])
    from omz_tools.localstate import hash_file  # streams: keeps this process small

    with _bench.work_folder("download", args.keep) as work:
        with _bench.served_ir_model(work, MODEL, 100_000, args.size_mb << 20) as (files, nginx):
            base = nginx.url
            copy = _bench.openvino_dev_copy(work)
            for registry, sha256 in ((copy / "omz_tools" / "models", False), (work / "registry", False),
                                     (work / "registry256", True)):
                _bench.write_entry(registry, MODEL, _bench.model_yml(MODEL, files, base, "download benchmark",
                                                                      sha256))
            env = dict(os.environ, CI="true")
            env.pop("OMZ_REGISTRY", None)
            theirs_env = dict(env, PYTHONPATH=str(copy))
            big = f"public/{MODEL}/FP32/{MODEL}.bin"
            small = f"public/{MODEL}/FP32/{MODEL}.xml"

            def tool(who: str, out: Path) -> list:
                if who == "omz_downloader":
                    return [str(_bench.VENV_BIN / "omz_downloader"), "--name", MODEL, "-o", str(out)]
                if who.startswith("omz-downloader"):
                    registry = work / ("registry256" if who.endswith("sha256") else "registry")
                    return [str(_bench.VENV_BIN / "omz-downloader"), "--name", MODEL, "-o", str(out),
                            "--registry", str(registry)]
                return ["curl", "-s", "--create-dirs", "-o", str(out / big), f"{base}/{big}",
                        "-o", str(out / small), f"{base}/{small}"]

            # Ours twice: with the same sha384 entry as openvino-dev's, and with sha256 hashes as our
            # registry has them (sha256 is hardware-accelerated on most CPUs, sha384 is not).
            tools = ["omz_downloader", "omz-downloader", "omz-downloader sha256", "curl"]
            times = {(who, kind): [] for who in tools for kind in ("cold", "rerun")}
            rss = {who: [] for who in tools}
            for who in tools:  # warm-up: page cache, .pyc files
                out = work / f"warm-{who}"
                _bench.measure(tool(who, out), theirs_env if who == "omz_downloader" else env, work)
                shutil.rmtree(out)
            for _ in range(args.runs):
                for who in tools:
                    out = work / f"out-{who}"
                    who_env = theirs_env if who == "omz_downloader" else env
                    for kind in ("cold", "rerun"):
                        seconds, peak = _bench.measure(tool(who, out), who_env, work)
                        times[(who, kind)].append(seconds)
                        rss[who].append(peak)
                    for name in files:
                        if who.startswith("omz-downloader"):  # every byte arrived as it should
                            got = hash_file(out / "public" / MODEL / name, "sha384")[0]
                            assert got == files[name][1], name
                    shutil.rmtree(out)

        med = _bench.medians(times)
        print(f"{args.size_mb} MiB + 100 kB from a loopback nginx, median of {args.runs} runs "
              f"({os.cpu_count()} cores)")
        print()
        rows = []
        for kind, label in (("cold", "cold (empty output folder)"), ("rerun", "second run, files present")):
            theirs, ours, ours256, curl = (med[(who, kind)] for who in tools)
            rows.append([label, f"{theirs:.2f} s", f"{ours:.2f} s", f"{ours / theirs:.2f}x", f"{ours256:.2f} s",
                         f"{ours256 / theirs:.2f}x", f"{curl:.2f} s"])
        peak = {who: max(values) for who, values in rss.items()}
        rows.append(["peak RSS", f"{peak['omz_downloader']:.0f} MiB", f"{peak['omz-downloader']:.0f} MiB",
                     f"{peak['omz-downloader'] / peak['omz_downloader']:.2f}x",
                     f"{peak['omz-downloader sha256']:.0f} MiB",
                     f"{peak['omz-downloader sha256'] / peak['omz_downloader']:.2f}x", f"{peak['curl']:.0f} MiB"])
        _bench.print_table(["run", "omz_downloader (openvino-dev, sha384)", "omz-downloader (ours, sha384)", "ratio",
                            "omz-downloader (ours, sha256)", "ratio", "curl -s -o (no verification)"], rows)


if __name__ == "__main__":
    main()
