"""Cache-hit benchmark: a ~200 MB model from a warm cache into a fresh output folder.

Side by side in one run: our ``omz-downloader --cache_dir`` against openvino-dev's
``omz_downloader --cache_dir`` (which copies the entry and re-hashes it). Both use the *same*
cache folder: openvino-dev's downloader fills it (cold, from a loopback nginx), which also shows
that an existing OMZ cache works with ours. openvino-dev's downloader gets the entry from a
throwaway copy of its package folder (PYTHONPATH), since its registry is its package's models/.

    .venv/bin/python benchmarks/cache.py [--size-mb 200] [--runs 5] [--keep]

Prints medians, the ratio and peak RSS (of each child, from /usr/bin/time) as a Markdown table.
"""

from __future__ import annotations

import os
import shutil

import _bench

MODEL = "bench-cache-model"


def main() -> None:
    args = _bench.size_arguments(__doc__.splitlines()[0])
    with _bench.work_folder("cache", args.keep) as work:
        with _bench.served_ir_model(work, MODEL, 200_000, args.size_mb << 20) as (files, nginx):
            # openvino-dev's downloader: a copy of its package with our entry in its models/.
            copy = _bench.openvino_dev_copy(work)
            entry = _bench.model_yml(MODEL, files, nginx.url, "cache benchmark")
            for registry in (copy / "omz_tools" / "models", work / "registry"):
                _bench.write_entry(registry, MODEL, entry)
            env = dict(os.environ, CI="true")
            theirs_env = dict(env, PYTHONPATH=str(copy))
            theirs = [str(_bench.VENV_BIN / "omz_downloader"), "--name", MODEL]
            ours = [str(_bench.VENV_BIN / "omz-downloader"), "--name", MODEL, "--registry", str(work / "registry")]
            cache = work / "cache"

            fill = _bench.measure(theirs + ["-o", str(work / "fill"), "--cache_dir", str(cache)], theirs_env, work)
            first = _bench.measure(ours + ["-o", str(work / "first"), "--cache_dir", str(cache), "--offline"],
                                   env, work)
            times: dict = {"theirs": [], "ours": []}
            rss: dict = {"theirs": [], "ours": []}
            for i in range(args.runs):  # alternate, so both see the same page-cache state
                for who, cmd, who_env in (("theirs", theirs, theirs_env), ("ours", ours, env)):
                    out = work / f"out-{who}-{i}"
                    t, r = _bench.measure(cmd + ["-o", str(out), "--cache_dir", str(cache)], who_env, work)
                    times[who].append(t)
                    rss[who].append(r)
                    shutil.rmtree(out)
            served_requests = len(nginx.requests())

        med = _bench.medians(times)
        print(f"cache hit of a {args.size_mb} MiB model into a fresh output folder, median of {args.runs}"
              f" ({os.cpu_count()} cores); nginx answered {served_requests} requests in all (the cold fill)")
        print()
        _bench.print_table(["run", "omz_downloader --cache_dir", "omz-downloader --cache_dir", "ratio"], [
            ["cold fill of the cache (theirs)", f"{fill[0]:.2f} s", "", ""],
            ["first hit of an OMZ-filled entry (ours re-hashes once)", "", f"{first[0]:.2f} s", ""],
            ["cache hit, fresh output folder", f"{med['theirs']:.2f} s", f"{med['ours']:.2f} s",
             f"{med['ours'] / med['theirs']:.2f}x"],
            ["peak RSS", f"{max(rss['theirs']):.0f} MiB", f"{max(rss['ours']):.0f} MiB", ""],
        ])


if __name__ == "__main__":
    main()
