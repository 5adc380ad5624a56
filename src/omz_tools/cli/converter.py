"""omz-converter / converter.py: turn downloaded models into OpenVINO IR (FP32, FP16), checked."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from omz_tools.cli.common import (
    CONTEXT_SETTINGS, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, fail, parse_precisions, registry_errors,
    resolve_models, selection_options,
)
from omz_tools.errors import OmzError


def _jobs(ctx, param, value):
    if value == "auto":
        return os.cpu_count() or 1
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise click.BadParameter(f'must be a positive integer or "auto", got {value!r}')
    return jobs


@click.command(context_settings=CONTEXT_SETTINGS)
@selection_options("convert")
@click.option("-d", "--download_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default="current folder", metavar="DIR", help="root of the downloaded model files")
@click.option("-o", "--output_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="root for <subdirectory>/<PRECISION>/<name>.xml|.bin (default: the download folder)")
@click.option("--precisions", metavar="PREC[,PREC...]", callback=parse_precisions,
              help="convert only to these precisions (default: FP32 and FP16)")
@click.option("-p", "--python", metavar="PYTHON", type=click.Path(dir_okay=False),
              help="Python interpreter to run Model Optimizer with (default: this one)")
@click.option("--mo", type=click.Path(dir_okay=False, path_type=Path), metavar="MO.PY",
              help="Model Optimizer entry point script (default: the 'mo' beside PYTHON, else "
                   "PYTHON -m openvino.tools.mo)")
@click.option("--backend", type=click.Choice(["auto", "mo", "native", "ovc"]), default="auto", show_default=True,
              help="mo: Model Optimizer (openvino-dev 2024.6) run with PYTHON; native: the native Caffe front end "
                   "in this process (Caffe models only; needs no Model Optimizer); ovc: openvino.convert_model in "
                   "a child process with the model's MO arguments translated (ONNX, TensorFlow, PaddlePaddle; PyTorch "
                   "through ONNX with torch installed); auto: mo when PYTHON has it (or --mo is given), else native "
                   "for Caffe and ovc for the others (PyTorch models: ovc)")
@click.option("--add_mo_arg", "--add-mo-arg", "extra_mo_args", multiple=True, metavar="ARG",
              help="an extra argument for Model Optimizer (repeatable)")
@click.option("--dry_run", "--dry-run", is_flag=True, help="print the conversion commands, run nothing")
@click.option("-j", "--jobs", default="1", show_default=True, callback=_jobs, metavar="N|auto",
              help="how many models to convert at once (memory permitting)")
@click.option("--force", is_flag=True, help="convert again even when the IR is up to date")
@click.option("--download", is_flag=True, help="fetch missing or unverified input files first (as omz-downloader "
                                               "does; the five options below are its own)")
@click.option("--cache_dir", multiple=True, metavar="DIR|s3://BUCKET/PREFIX",
              help="omz-downloader's content-addressed caches (repeatable, nearest first): with --download "
                   "for the input files; always for the IR cache (an IR converted the same way elsewhere "
                   "is fetched and verified instead of converting); given, it replaces $OMZ_CACHE_DIR")
@click.option("--no_ir_cache", is_flag=True, help="neither read nor store IR in the --cache_dir caches")
@click.option("--mirror", "mirrors", multiple=True, metavar="URL",
              help="with --download: try URL/<subdirectory>/<file> before the original source (repeatable; "
                   "then $OMZ_MIRROR)")
@click.option("--offline", is_flag=True,
              help="with --download: no network connection, only files present or in the cache (also OMZ_OFFLINE=1)")
@click.option("--num_attempts", type=click.IntRange(min=1), default=None, metavar="N",
              help="with --download: attempts per file and source  [default: 3]")
@click.option("--timeout", metavar="N|CONNECT,READ",
              help="with --download: seconds to connect and between two reads (default $OMZ_TIMEOUT, else 15,60)")
@click.option("--progress_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: a status line on a terminal, plain lines otherwise; json: one event per line")
@registry_errors
def cli(name, list_file, all_models, print_all, registries, download_dir, output_dir, precisions, python, mo,
        backend, extra_mo_args, dry_run, jobs, force, download, cache_dir, no_ir_cache, mirrors, offline,
        num_attempts, timeout, progress_format):
    """Convert the selected models to OpenVINO IR in DIR/<subdirectory>/<PRECISION>/: run Model
    Optimizer (or the native Caffe front end, see --backend) once per model (FP16 is derived from
    FP32), check the IR against the registry's model card, and skip models whose IR is up to date.

    Exit status: 0 all models converted or up to date, 1 some model failed (see the FAILED: list),
    2 usage error, 130 interrupted (no half-written IR is left behind).

    Environment: OMZ_CACHE_DIR (as --cache_dir); with --download, as omz-downloader: OMZ_MIRROR,
    OMZ_OFFLINE, OMZ_TIMEOUT, OMZ_MIN_RATE, OMZ_STALL_WINDOW, HTTP(S)_PROXY.
    """
    download_options = _download_options(download, download_dir, cache_dir, mirrors, offline, num_attempts,
                                         timeout)
    try:
        models = resolve_models(name, list_file, all_models, print_all, registries)
        from omz_tools.convert.engine import Options, run
        from omz_tools.convert.progress import make_reporter
    except KeyboardInterrupt:  # before any conversion started (click would say "Aborted!" and exit 1)
        click.echo("Interrupted: nothing was converted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except OmzError:
        raise  # registry_errors says it in one line, with its exit code
    except Exception as exc:  # noqa: BLE001 - a bug while selecting: one message, never a traceback
        fail(_unexpected(exc))

    options = Options(download_dir=download_dir, output_dir=output_dir, precisions=precisions,
                      python=python, mo=mo, backend=backend, extra_mo_args=list(extra_mo_args), dry_run=dry_run,
                      jobs=jobs, force=force, download=download, download_options=download_options,
                      registries=list(registries), ir_cache=not no_ir_cache)
    reporter = make_reporter(progress_format, jobs)
    try:
        result = run(models, options, reporter)
    except KeyboardInterrupt:
        reporter.close()
        click.echo("Interrupted: the conversions were stopped, with their Model Optimizer or ovc processes; IR folders are as before this run.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except OmzError:
        reporter.close()
        raise  # registry_errors says it in one line, with its exit code
    except Exception as exc:  # noqa: BLE001 - a bug outside any one model: one message, never a traceback
        reporter.close()
        fail(_unexpected(exc))
    if not dry_run:
        reporter.summary(result)
    elif result.failures:
        from omz_tools.convert.progress import failed_lines
        click.echo("\n".join(failed_lines(result)), err=True)
    reporter.close()
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def _unexpected(exc: BaseException) -> str:
    """One paragraph for a bug; the traceback goes to a log file it names."""
    import tempfile
    import traceback
    fd, log = tempfile.mkstemp(prefix="omz-converter.", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return (f"omz-converter: unexpected error ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); this is "
            f"a bug in omz_tools: please report it with the traceback in {log}. IR folders that were complete "
            "stay as they were.")


def _download_options(download, download_dir, cache_dir, mirrors, offline, num_attempts, timeout):
    """--download's DownloadOptions (without --download: None, or only the --cache_dir caches, which
    the IR cache reads), checked now: a bad value is a usage error."""
    from omz_tools.download.options import CACHE_DIR_ENV
    given = {"--mirror": bool(mirrors), "--offline": offline,
             "--num_attempts": num_attempts is not None, "--timeout": timeout is not None}
    if not download:
        if not any(given.values()) and (cache_dir or os.environ.get(CACHE_DIR_ENV, "").strip()):
            return _build_options(download_dir, cache_dir=cache_dir)
        if any(given.values()):
            raise click.UsageError(f"{', '.join(k for k, v in given.items() if v)} only apply with --download "
                                   "(they are how it fetches missing input files)")
        return None
    return _build_options(download_dir, cache_dir=cache_dir, mirrors=mirrors, offline=offline,
                          num_attempts=3 if num_attempts is None else num_attempts, timeout=timeout)


def _build_options(download_dir, **kwargs):
    from omz_tools.download import DownloadOptions
    from omz_tools.download.sources import SourceConfigError
    try:
        return DownloadOptions.build(download_dir, **kwargs)
    except SourceConfigError as exc:
        raise click.UsageError(str(exc)) from None


def main() -> None:
    cli(prog_name="omz-converter")


if __name__ == "__main__":
    main()
