"""Download registry models' files, every byte verified (``omz_tools.download``).

>>> import omz_tools
>>> result = omz_tools.download(["se-resnet-101"], output_dir="models", jobs=2)
>>> result.successes          # {"se-resnet-101": [Path(...prototxt), Path(...caffemodel)]}
>>> result.failures           # {} or {"model": "why it failed"}

Modules: ``transport`` (HTTP session, Range/If-Range, retries, Google Drive), ``verify``
(streaming hash+size, mismatch messages), ``records`` (what was verified; .part sidecars),
``postprocess`` (regex_replace, safe unpack_archive), ``progress`` (text/tqdm/JSON),
``fetch`` (one file), ``engine`` (plan, parallel run, result). Writes, fsync, hashing, the stat
fingerprint and linking are :mod:`omz_tools.localstate`'s.
Importing this package does not import requests; fetching does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Union

from omz_tools.download.engine import DownloadResult
from omz_tools.download.errors import DownloadError, Interrupted
from omz_tools.download.options import DownloadOptions
from omz_tools.download.verify import verified

__all__ = ["download", "DownloadOptions", "DownloadResult", "DownloadError", "Interrupted", "verified"]


def download(names: Union[str, Iterable], output_dir: Union[str, Path] = ".", *, jobs: int = 1,
             registries: Iterable = (), num_attempts: int = 3, precisions: Optional[Iterable[str]] = None,
             check_all: bool = False, progress: Union[bool, str, object] = False,
             registry=None, cache_dir: Union[str, Path, None] = None, mirrors: Iterable[str] = (),
             offline: bool = False, timeout: Union[float, str, tuple, None] = None,
             min_rate: Union[float, str, None] = None,
             stall_window: Optional[float] = None, options: Optional[DownloadOptions] = None) -> DownloadResult:
    """Fetch the files of the models matching ``names`` into ``output_dir/<subdirectory>/``.

    ``names``: a model name or fnmatch pattern, a list of them, or registry Model objects.
    ``registries``: extra registry folders (before $OMZ_REGISTRY and the built-in one), or pass a
    ready ``registry``. ``precisions``: as ``--precisions``. ``check_all``: re-hash files even when
    their record says they are verified. ``progress``: False (quiet), True or "text", "json", or a
    ``progress.Reporter``. ``cache_dir``: a content-addressed cache shared by runs and processes
    (as ``--cache_dir``; None: $OMZ_CACHE_DIR's). ``mirrors``: base URLs tried in order before the original source, then
    $OMZ_MIRROR's. ``offline``: no network connection at all (also $OMZ_OFFLINE=1).
    ``timeout``: seconds to connect and between two reads: a number for both, ``(connect, read)``
    or "CONNECT,READ" (default $OMZ_TIMEOUT, else 15 and 60). ``min_rate``: bytes/s (a number, or
    "1K", "0.5M"; 0 turns it off) below which, averaged over ``stall_window`` seconds, an attempt
    is ended and retried from where it got (defaults $OMZ_MIN_RATE or 1K, $OMZ_STALL_WINDOW or 30).
    ``options``: a ready :class:`DownloadOptions` (then the keyword arguments above from
    ``output_dir`` to ``stall_window`` are not used); otherwise one is built from them.

    Returns a :class:`DownloadResult`; a model that fails is listed in ``result.failures`` with the
    reason, never raised. Raises ``omz_tools.RegistryError`` for a broken registry,
    ``NoMatchError`` for a pattern matching nothing, ``ValueError`` for bad arguments (a bad mirror
    URL too), ``CacheError`` for an unusable cache folder, ``NotEnoughSpace`` when the files to
    fetch do not fit on disk and ``FolderNotWritable`` when they cannot be written to
    ``output_dir`` (nothing is fetched then), and ``KeyboardInterrupt`` if interrupted (.part files
    are kept for the next call to resume). All but the last are ``omz_tools.errors.OmzError``s.
    """
    if options is None:
        options = DownloadOptions.build(output_dir, jobs=jobs, num_attempts=num_attempts,
                                        precisions=precisions, check_all=check_all, cache_dir=cache_dir,
                                        mirrors=mirrors, offline=offline, timeout=timeout,
                                        min_rate=min_rate, stall_window=stall_window)
    from omz_tools.registry import resolve
    return run(resolve(names, registries=registries, registry=registry), options, progress)


def run(models: list, options: DownloadOptions, progress: Union[bool, str, object] = False) -> DownloadResult:
    """Download ``models`` (registry Model objects) as ``options`` say; see :func:`download`."""
    from omz_tools.download import progress as progress_mod
    from omz_tools.download.engine import Engine
    from omz_tools.download.plan import plan
    from omz_tools.download.options import RunOptions

    live = RunOptions.of(options)
    jobs_plan = plan(models, options.output_dir, options.precisions, options.sources_for())
    live.check_space(jobs_plan, options.output_dir)
    if isinstance(progress, progress_mod.Reporter):
        reporter = progress
    elif progress in (False, None):
        reporter = progress_mod.Reporter()
    else:
        total = sum(t.model_file.size for j in jobs_plan for t in j.tasks)
        reporter = progress_mod.make_reporter("json" if progress == "json" else "text", total)
    engine = Engine(reporter=reporter, options=options, store=live.store(reporter, options.check_all))
    try:
        result = engine.run(jobs_plan, live.session_factory())
    except (Interrupted, KeyboardInterrupt):
        reporter.close(interrupted=True)  # bars erased before anyone says "Interrupted"
        raise KeyboardInterrupt() from None
    reporter.summary(result)
    return result


# ``omz_tools.download`` is both this package and (lazily, in omz_tools/__init__.py) this function.
from omz_tools.modulecall import make_callable  # noqa: E402

make_callable(__name__, download)
