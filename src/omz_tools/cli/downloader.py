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
        CONTEXT_SETTINGS, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, fail, parse_precisions, registry_errors,
        resolve_models, selection_options,
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
@click.option("--cache_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="a content-addressed cache shared by runs and processes (openvino-dev's "
                   "omz_downloader caches work too); hits are linked, not copied")
@click.option("--mirror", "mirrors", multiple=True, metavar="URL",
              help="try URL/<subdirectory>/<file> before the original source (repeatable, in order; "
                   "then $OMZ_MIRROR, space separated); the hash decides, so any mirror is safe")
@click.option("--offline", is_flag=True,
              help="no network connection at all: only files present or in the cache (also OMZ_OFFLINE=1)")
@registry_errors
def cli(name, list_file, all_models, print_all, registries, precisions, output_dir, num_attempts, jobs,
        progress_format, check_all, cache_dir, mirrors, offline):
    """Download the selected models' files into DIR/<subdirectory>/, verifying size and hash.

    Exit status: 0 all models ready, 1 some model failed (see the FAILED: list), 2 usage error,
    130 interrupted (partial downloads are kept as .part files and resumed next time).

    Environment: HTTP_PROXY, HTTPS_PROXY and NO_PROXY; REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE) for a
    CA bundle; OMZ_REGISTRY, OMZ_MIRROR and OMZ_OFFLINE (see --registry, --mirror, --offline).
    """
    models = resolve_models(name, list_file, all_models, print_all, registries)

    from omz_tools.download import download
    from omz_tools.download.sources import SourceConfigError
    from omz_tools.download.space import FolderNotWritable, NotEnoughSpace

    try:
        result = download(models, output_dir, jobs=jobs, num_attempts=num_attempts, precisions=precisions,
                          check_all=check_all, progress=progress_format, cache_dir=cache_dir,
                          mirrors=mirrors, offline=offline)
    except SourceConfigError as exc:
        raise click.UsageError(str(exc)) from None
    except (NotEnoughSpace, FolderNotWritable) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        click.echo("Interrupted: partial downloads are kept as .part files; run again to resume.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - cache.py is imported only when --cache_dir is given
        from omz_tools.download.cache import CacheError
        if not isinstance(exc, CacheError):
            raise
        fail(str(exc))
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


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
    # Not click's standalone mode: it turns Ctrl-C into "Aborted!" and exit 1; ours is 130 anywhere.
    try:
        cli.main(prog_name="omz-downloader", standalone_mode=False)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            _exit_now(exc.code or 0)
        raise
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("Interrupted: partial downloads are kept as .part files; run again to resume.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
