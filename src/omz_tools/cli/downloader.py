"""omz-downloader / downloader.py: fetch the selected models' files, every byte verified."""

from __future__ import annotations

import sys

try:
    # Ctrl-C in the first ~0.1 s lands in these imports (click, the registry), before main() can
    # catch it: say so in one line and exit 130, as an interrupt anywhere else does, instead of a
    # traceback. (SystemExit raised while this module is imported ends the process quietly.)
    from pathlib import Path

    import click

    from omz_tools.cli.common import (
        CONTEXT_SETTINGS, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, parse_precisions, registry_errors,
        resolve_models, run_command, selection_options,
    )
except KeyboardInterrupt:
    sys.stderr.write("Interrupted while starting; nothing was downloaded.\n")
    sys.exit(130)


@click.command(context_settings=CONTEXT_SETTINGS)
@selection_options("download")
@click.option("--precisions", metavar="PREC[,PREC...]", callback=parse_precisions,
              help="download only files of these precisions (for models shipped as IR)")
@click.option("-o", "--output_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default="current folder", metavar="DIR", help="where to put <subdirectory>/<file>")
@click.option("--num_attempts", type=click.IntRange(min=1), default=3, show_default=True, metavar="N",
              help="attempts per file and source (retries back off exponentially)")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="how many files to download at once")
@click.option("--progress_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: bars on a terminal, lines otherwise; json: one event per line")
@click.option("--check_all", "--recheck", "check_all", is_flag=True,
              help="re-hash every present file instead of trusting the record of earlier verification")
@click.option("--cache_dir", "cache_dir", multiple=True, metavar="DIR|s3://BUCKET/PREFIX",
              help="a content-addressed cache shared by runs and processes (openvino-dev's "
                   "omz_downloader caches work too); hits are linked, not copied. Repeatable: a folder "
                   "and S3-compatible buckets (needs the [s3] extra), nearest first; given, it replaces "
                   "$OMZ_CACHE_DIR (space separated, nearest first)")
@click.option("--cache_repair", is_flag=True,
              help="replace an S3 cache object that did not verify with the verified file")
@click.option("--mirror", "mirrors", multiple=True, metavar="URL",
              help="try URL/<subdirectory>/<file> before the original source (repeatable, in order; "
                   "then $OMZ_MIRROR, space separated); the hash decides, so any mirror is safe")
@click.option("--offline", is_flag=True,
              help="no network connection at all: only files present or in the cache (also OMZ_OFFLINE=1)")
@click.option("--timeout", metavar="SECONDS[,READ]",
              help="seconds to connect and between two reads: one number for both, or CONNECT,READ "
                   "(also OMZ_TIMEOUT)  [default: 15,60]")
@click.option("--min_rate", metavar="RATE",
              help="end an attempt (and resume from where it got) when fewer than RATE bytes/s arrive "
                   "over --stall_window; e.g. 1024, 1K, 0.5M; 0 turns it off (also OMZ_MIN_RATE)  "
                   "[default: 1K]")
@click.option("--stall_window", metavar="SECONDS",
              help="the window --min_rate is measured over (also OMZ_STALL_WINDOW)  [default: 30]")
@click.option("--dry_run", is_flag=True,
              help="print what would be fetched (each file's size and where it would come from: present, "
                   "cache, mirrors in order, origin) and the total; nothing written, and no connection "
                   "but a HEAD request per file to an s3:// cache")
@click.option("-q", "--quiet", is_flag=True,
              help="print only errors and the FAILED: list (no bars, no per-file lines)")
@registry_errors
def cli(name, list_file, all_models, print_all, registries, precisions, output_dir, num_attempts, jobs,
        progress_format, check_all, cache_dir, cache_repair, mirrors, offline, timeout, min_rate, stall_window, dry_run,
        quiet):
    """Download the selected models' files into DIR/<subdirectory>/, verifying size and hash.

    Exit status: 0 all models ready, 1 some model failed (see the FAILED: list), 2 usage error,
    130 interrupted (partial downloads are kept as .part files and resumed next time).

    Environment: HTTP_PROXY, HTTPS_PROXY and NO_PROXY; REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE) for a
    CA bundle; OMZ_REGISTRY, OMZ_MIRROR, OMZ_CACHE_DIR, OMZ_OFFLINE, OMZ_TIMEOUT, OMZ_MIN_RATE and
    OMZ_STALL_WINDOW (see the options of the same names); AWS_* for an s3:// cache.
    """
    models = resolve_models(name, list_file, all_models, print_all, registries)

    from omz_tools.download import DownloadOptions, run

    # Bad values (a mirror, a timeout, OMZ_OFFLINE...) are usage errors, said by registry_errors.
    options = DownloadOptions.build(output_dir, jobs=jobs, num_attempts=num_attempts, precisions=precisions,
                                    check_all=check_all, cache_dir=cache_dir, mirrors=mirrors,
                                    cache_repair=cache_repair,
                                    offline=offline, timeout=timeout, min_rate=min_rate,
                                    stall_window=stall_window)
    if dry_run:
        _dry_run(models, options, progress_format, quiet)
        sys.exit(EXIT_OK)
    progress = progress_format
    if quiet and progress_format == "text":
        from omz_tools.download.progress import QuietReporter
        progress = QuietReporter()
    try:
        result = run(models, options, progress)
    except KeyboardInterrupt:
        click.echo("Interrupted: partial downloads are kept as .part files; run again to resume.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def _dry_run(models, options, progress_format, quiet) -> None:
    """Print the plan: nothing written, no connection (requests is not even imported) but a HEAD
    per file to an s3:// cache."""
    import json

    from omz_tools.download.plan import plan
    from omz_tools.download.options import dry_run
    from omz_tools.wording import human_size, printable

    notes: list = []  # why an S3 cache cannot be used
    rows = dry_run(plan(models, options.output_dir, options.precisions, options.sources_for()),
                   options.cache_dir, options.offline, notes)
    for note in notes:
        click.echo(printable(note), err=True)
    fetch = [row for row in rows if row["state"] == "fetch"]
    missing = [row for row in rows if row["state"] == "missing"]
    total = sum(row["size"] for row in fetch)
    if progress_format == "json":
        for row in rows:
            click.echo(json.dumps({"$type": "download_plan_file", **row}))
        click.echo(json.dumps({"$type": "download_plan", "files": len(rows), "files_to_fetch": len(fetch),
                               "bytes_to_fetch": total, "files_missing": len(missing),
                               "files_present": sum(r["state"].startswith("present") for r in rows),
                               "files_cached": sum(r["state"] == "cache" for r in rows)}))
        return
    if not quiet:
        click.echo("Dry run: nothing is fetched or written.")
        model = None
        for row in rows:
            if row["model"] != model:
                model = row["model"]
                click.echo(f"{model}:")
            where = {"fetch": "from " + ", then ".join(row["from"]), "cache": row["from"][0] if row["from"] else "cache",
                     "missing": "missing (offline: no source)"}.get(row["state"], row["state"])
            click.echo(printable(f"  {row['model_file']}  {human_size(row['size'])}  {where}"))
    present = sum(r["state"].startswith("present") for r in rows)
    cached = sum(r["state"] == "cache" for r in rows)
    line = (f"To fetch: {len(fetch)} file(s), {human_size(total)} ({total} bytes); {present} present, "
            f"{cached} from the cache")
    click.echo(line + (f"; {len(missing)} missing offline" if missing else "") + ".")


def _exit_now(code) -> None:
    """End the process with ``code`` without tearing the interpreter down module by module (after
    a download, with requests and urllib3 loaded, that teardown costs tens of milliseconds).
    atexit handlers still run and the standard streams are flushed first. Everything the run
    wrote is closed by then (files are fsynced and renamed, records written and closed)."""
    import atexit
    import os
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - e.g. a closed pipe: nothing more to say there
                pass
        os._exit(code)


def main() -> None:
    """The process entry point (the console scripts): ends the process when the run is done."""
    run_command(cli, "omz-downloader", "Interrupted: partial downloads are kept as .part files; run again to resume.",
                finish=_exit_now)


if __name__ == "__main__":
    main()
