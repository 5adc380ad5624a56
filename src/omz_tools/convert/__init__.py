"""Conversion to OpenVINO IR (``omz_tools.convert``, ``omz_tools.load``).

>>> import omz_tools
>>> omz_tools.convert("se-resnet-101", download_dir="models")   # {"FP32": Path(.xml), "FP16": ...}
>>> xml = omz_tools.load("se-resnet-101")                        # download + convert, FP16 IR path
>>> compiled = omz_tools.load("se-resnet-101", compile="CPU")     # an openvino.CompiledModel

Modules: ``mo`` (finding and running Model Optimizer), ``caffe_parser`` (the upb caffe_pb2), ``inputs``,
``budget`` (memory for -j),
``records`` (what produced an IR; skip when unchanged), ``ircheck`` (IR vs registry and model
card), ``rtinfo``, ``progress``; the pipeline: ``engine`` (Converter, many models at once) over
its steps ``plan``, ``inputs``, ``backends``, ``derive`` and ``install``, with ``outcome``
(Options, results, errors). Importing this package does not import openvino; converting does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Union

from omz_tools.convert.engine import ConvertResult, Options, run
from omz_tools.errors import OmzError

__all__ = ["convert", "load", "ConversionError", "ConvertResult", "Options", "run", "default_models_dir"]


class ConversionError(OmzError):
    """A model could not be downloaded or converted; the message says why and what to try."""


def default_models_dir() -> Path:
    """Where :func:`load` keeps downloads and IR unless told otherwise ($OMZ_MODELS_DIR or ~/.cache)."""
    if os.environ.get("OMZ_MODELS_DIR"):
        return Path(os.environ["OMZ_MODELS_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "omz_tools" / "models"


def convert(name: Union[str, Iterable[str]], *, download_dir: Union[str, Path] = ".",
            output_dir: Optional[Union[str, Path]] = None, precisions: Iterable[str] = ("FP32", "FP16"),
            registries: Iterable = (), download: bool = False, force: bool = False, jobs: int = 1,
            python: Optional[str] = None, mo: Optional[Union[str, Path]] = None, backend: str = "auto",
            extra_mo_args: Iterable[str] = (), progress: Union[bool, str, object] = False,
            cache_dir: Optional[Union[str, Path]] = None, mirrors: Iterable[str] = (), offline: bool = False,
            num_attempts: int = 3, timeout: Union[float, str, tuple, None] = None,
            min_rate: Union[float, str, None] = None, stall_window: Optional[float] = None,
            download_options=None, ir_cache: bool = True) -> dict:
    """Convert models to IR; reuses IR that is up to date.

    ``name``: a model name or pattern (or a list). Returns ``{precision: Path of .xml}`` when one
    model is selected, else ``{model: {precision: Path}}``. ``backend``: "mo" (Model Optimizer of
    ``python``), "native" (the native Caffe front end, in this process) or "auto" (mo when
    ``python`` has it, else native). ``download``: fetch missing inputs first, with
    ``cache_dir``, ``mirrors``, ``offline``, ``num_attempts``, ``timeout``, ``min_rate`` and
    ``stall_window`` as :func:`omz_tools.download` takes them, or a ready
    ``download_options`` (:class:`omz_tools.download.DownloadOptions`). ``cache_dir`` (a folder, an
    ``s3://BUCKET/PREFIX`` or a list) is also the IR cache, with or without ``download``: an IR
    converted the same way is fetched and verified instead of converting (``ir_cache=False``: never);
    without ``cache_dir``, $OMZ_CACHE_DIR's caches.
    ``progress``: False, True/"text" or "json". Raises
    :class:`ConversionError` naming every failed model and why, ``omz_tools.RegistryError``/``NoMatchError`` for the selection.
    """
    from omz_tools.convert.progress import make_reporter
    from omz_tools.registry import resolve
    if isinstance(precisions, str):
        precisions = precisions.split(",")
    models = resolve(name, registries=registries)
    from omz_tools.download.options import CACHE_DIR_ENV
    if (download or cache_dir is not None or os.environ.get(CACHE_DIR_ENV, "").strip()) \
            and download_options is None:
        download_options = _download_options(download_dir, cache_dir, mirrors, offline, num_attempts, timeout,
                                             min_rate, stall_window)
    options = Options(download_dir=Path(download_dir), output_dir=Path(output_dir) if output_dir else None,
                      precisions=set(precisions), python=python, mo=Path(mo) if mo else None, backend=backend,
                      extra_mo_args=list(extra_mo_args), jobs=jobs, force=force, download=download,
                      download_options=download_options, registries=[Path(r) for r in registries],
                      ir_cache=ir_cache)
    reporter = make_reporter("text" if progress is True else progress, jobs)
    try:
        result = run(models, options, reporter)
        reporter.summary(result)
    finally:
        reporter.close()
    if result.failures:
        raise ConversionError("; ".join(f"{m}: {msg}" for m, msg in result.failures.items()))
    if len(models) == 1:
        return result.successes[models[0].name]
    return result.successes


def _log():
    import logging
    return logging.getLogger("omz_tools")


def _load_progress(progress) -> tuple:
    """(the downloader's progress, the converter's) for load(): see its docstring."""
    if progress is None:
        import sys
        if sys.stderr.isatty() or sys.stdout.isatty():
            return "text", "text"
        from omz_tools.convert.progress import LoggingReporter
        return False, LoggingReporter(_log())
    return progress, progress


def _download_options(download_dir, cache_dir, mirrors, offline, num_attempts, timeout, min_rate, stall_window):
    from omz_tools.download import DownloadOptions
    return DownloadOptions.build(download_dir, cache_dir=cache_dir, mirrors=mirrors, offline=offline,
                                 num_attempts=num_attempts, timeout=timeout, min_rate=min_rate,
                                 stall_window=stall_window)


def load(name: str, precision: str = "FP16", *, download_dir: Optional[Union[str, Path]] = None,
         output_dir: Optional[Union[str, Path]] = None, registries: Iterable = (),
         compile: Union[bool, str] = False, progress: Union[bool, str, None] = None,
         cache_dir: Optional[Union[str, Path]] = None, mirrors: Iterable[str] = (), offline: bool = False,
         num_attempts: int = 3, timeout: Union[float, str, tuple, None] = None,
         min_rate: Union[float, str, None] = None, stall_window: Optional[float] = None, **convert_options):
    """Download (if needed), convert (if needed) and return one model's IR, like ``from_pretrained``.

    Returns the Path of ``<output_dir>/<subdirectory>/<precision>/<name>.xml``, or with
    ``compile=True`` (CPU) or ``compile="GPU"`` etc. an ``openvino.CompiledModel``.
    ``download_dir`` defaults to :func:`default_models_dir`. ``cache_dir``, ``mirrors``,
    ``offline``, ``num_attempts``, ``timeout``, ``min_rate``, ``stall_window``: as
    :func:`omz_tools.download` takes them.
    ``progress``: by default (None) bars and lines on a terminal, else INFO records on the
    ``omz_tools`` logger; False: nothing; "text" or "json" as the commands print them.
    """
    from omz_tools.registry import Registry
    registry = Registry.from_options([Path(r) for r in registries])
    model = registry.load(name)
    download_dir = Path(download_dir) if download_dir is not None else default_models_dir()

    if model.is_composite:
        raise ConversionError(f"{name} is a composite model; load its stages one by one "
                              f"({', '.join(s.name for s in model.model_stages)}), or use convert()")
    if precision not in model.precisions:
        raise ConversionError(f"{name} has no {precision} IR; it converts to {', '.join(sorted(model.precisions))}")
    from omz_tools.download import run as download_run
    options = _download_options(download_dir, cache_dir, mirrors, offline, num_attempts, timeout, min_rate,
                                stall_window)
    download_progress, convert_progress = _load_progress(progress)
    if download_progress is False and convert_progress is not False:
        _log().info("%s: checking its files in %s (fetching what is missing)", name, download_dir)
    fetched = download_run([model], options, download_progress)
    if fetched.failures:
        raise ConversionError("; ".join(f"{m}: {msg}" for m, msg in fetched.failures.items()))
    irs = convert(model, download_dir=download_dir, output_dir=output_dir, precisions=[precision],
                  registries=registries, progress=convert_progress, **convert_options)
    xml = irs[precision]
    if not compile:
        return xml
    import openvino as ov
    return ov.Core().compile_model(str(xml), "CPU" if compile is True else str(compile))


# ``omz_tools.convert`` is both this package and (lazily, in omz_tools/__init__.py) the function.
from omz_tools.modulecall import make_callable  # noqa: E402

make_callable(__name__, convert)
