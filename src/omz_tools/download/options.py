"""What a download run was asked to do, resolved once (arguments, then environment variables, then
defaults) by the CLI and by the Python API into one :class:`DownloadOptions`, which the engine and
the fetcher read; and :class:`RunOptions`, the run's live cache and sources built from it, with the
disk-space pre-check of a plan."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

from omz_tools.download.sources import SourceConfigError, candidates, mirrors_from, offline_from
from omz_tools.download.space import PlannedFile, check_space, check_writable


@dataclass(frozen=True)
class DownloadOptions:
    """Everything a download run was asked for, checked and resolved (see :meth:`build`)."""

    output_dir: Path = Path(".")
    jobs: int = 1  # files fetched at once (worker threads)
    num_attempts: int = 3  # per file and source
    precisions: Optional[frozenset] = None  # None: every precision
    check_all: bool = False  # re-hash present files (and cache entries) instead of trusting records
    cache_dir: Optional[Path] = None  # the folder cache
    s3_caches: tuple = ()  # s3://BUCKET/PREFIX tiers behind it, nearest first (s3cache.py)
    cache_repair: bool = False  # replace a bucket's object that did not verify
    mirrors: tuple = ()  # base URLs, in order: the arguments', then $OMZ_MIRROR's
    offline: bool = False  # the argument or $OMZ_OFFLINE
    limits: "NetLimits" = field(default_factory=lambda: NetLimits())

    @classmethod
    def build(cls, output_dir="." , *, jobs: int = 1, num_attempts: int = 3, precisions=None,
              check_all: bool = False, cache_dir=None, mirrors: Iterable[str] = (), offline: bool = False,
              timeout=None, min_rate=None, stall_window=None, cache_repair: bool = False,
              env: Optional[Mapping[str, str]] = None) -> "DownloadOptions":
        """Arguments as :func:`omz_tools.download` takes them. ValueError for a bad count or an
        unknown precision; SourceConfigError (a usage error, also a ValueError) for a bad mirror,
        $OMZ_OFFLINE, timeout, rate or window, or a bad or second folder ``cache_dir``.
        ``cache_dir``: a folder, an ``s3://BUCKET/PREFIX``, or a list of them (nearest first);
        when None or empty, $OMZ_CACHE_DIR's (space separated, nearest first), which a given
        ``cache_dir`` replaces."""
        from omz_tools.registry.schema import KNOWN_PRECISIONS

        env = os.environ if env is None else env
        if jobs < 1 or num_attempts < 1:
            raise ValueError(f"jobs and num_attempts must be positive, got jobs={jobs}, num_attempts={num_attempts}")
        if precisions is not None:
            precisions = frozenset(precisions.split(",") if isinstance(precisions, str) else precisions)
            unknown = precisions - set(KNOWN_PRECISIONS)
            if unknown:
                raise ValueError(f"unknown precisions {', '.join(sorted(unknown))}; known: "
                                 f"{', '.join(sorted(KNOWN_PRECISIONS))}")
        folder, buckets = caches_from(cache_dir, env)
        return cls(output_dir=Path(output_dir), jobs=jobs, num_attempts=num_attempts, precisions=precisions,
                   check_all=check_all, cache_dir=folder, s3_caches=buckets, cache_repair=cache_repair,
                   mirrors=tuple(mirrors_from(list(mirrors or ()), env)), offline=offline_from(offline, env),
                   limits=NetLimits.resolve(timeout, min_rate, stall_window, env))

    def sources_for(self) -> Callable:
        """plan()'s hook: the S3 cache tiers, then mirrors in order, then the registry's source;
        offline only the S3 tiers (the buckets are ours, not the origin)."""
        def build(model, model_file) -> list:
            return s3_sources(self.s3_caches, model_file) + candidates(
                model.subdirectory, model_file, list(self.mirrors), offline=self.offline)
        return build


CACHE_DIR_ENV = "OMZ_CACHE_DIR"


def caches_from(cache_dir, env: Mapping[str, str]) -> tuple:
    """split_caches of ``cache_dir``, or when none is given of $OMZ_CACHE_DIR (space separated,
    nearest first): a given --cache_dir replaces the variable rather than adding to it, so one
    command line can always say exactly which caches it uses."""
    if cache_dir is None or (not isinstance(cache_dir, (str, Path)) and not list(cache_dir)):
        values = env.get(CACHE_DIR_ENV, "").split()
        return split_caches(values, CACHE_DIR_ENV) if values else (None, ())
    return split_caches(cache_dir)


def split_caches(cache_dir, origin: str = "--cache_dir") -> tuple:
    """(folder Path or None, tuple of s3:// URLs) from a folder, a URL or a list of them."""
    if cache_dir is None:
        return None, ()
    values = [cache_dir] if isinstance(cache_dir, (str, Path)) else list(cache_dir)
    folders = [Path(v) for v in values if not (isinstance(v, str) and v.lower().startswith("s3://"))]
    buckets: list = []
    for value in values:
        if isinstance(value, str) and value.lower().startswith("s3://"):
            from omz_tools.download.s3cache import S3Location
            url = S3Location.parse(value, origin).url
            if url not in buckets:
                buckets.append(url)
    if len(folders) > 1:
        raise SourceConfigError(f"{origin}: expected at most one folder (and any s3:// caches), found "
                                f"{', '.join(map(str, folders))}.")
    return (folders[0] if folders else None), tuple(buckets)


def s3_sources(buckets, model_file) -> list:
    if not buckets:
        return []
    from omz_tools.download.s3cache import source_for
    return [s for s in (source_for(url, model_file) for url in buckets) if s is not None]


@dataclass
class RunOptions:
    cache: Optional["ContentCache"] = None  # noqa: F821 - cache.py is imported only with a cache
    mirrors: list = field(default_factory=list)
    offline: bool = False
    tiers: list = field(default_factory=list)  # s3cache.S3Tier, nearest first
    repair: bool = False

    @classmethod
    def of(cls, options: DownloadOptions) -> "RunOptions":
        """The live cache (CacheError for an unusable cache folder) and sources of ``options``."""
        cache = None
        if options.cache_dir is not None:  # cache.py (hashlib, json, uuid...) only when used
            from omz_tools.download.cache import ContentCache
            cache = ContentCache(options.cache_dir)
        tiers = []
        if options.s3_caches:  # boto3 only then; S3CacheError when it is missing
            from omz_tools.download.s3cache import S3Tier
            tiers = [S3Tier(url, limits=options.limits, num_attempts=options.num_attempts)
                     for url in options.s3_caches]
        return cls(cache=cache, mirrors=list(options.mirrors), offline=options.offline, tiers=tiers,
                   repair=options.cache_repair)

    @classmethod
    def resolve(cls, cache_dir=None, mirrors: Iterable[str] = (), offline: bool = False,
                env: Optional[Mapping[str, str]] = None) -> "RunOptions":
        """Raises SourceConfigError (a usage error) or CacheError (an unusable cache folder)."""
        env = os.environ if env is None else env
        cache = None
        if cache_dir is not None:  # cache.py (hashlib, json, shutil, uuid...) only when used
            from omz_tools.download.cache import ContentCache
            cache = ContentCache(Path(cache_dir))
        return cls(cache=cache,
                   mirrors=mirrors_from(list(mirrors or ()), env), offline=offline_from(offline, env))

    def sources_for(self) -> Callable:
        """plan()'s hook: mirrors in order, then the registry's source; none at all offline."""
        def build(model, model_file) -> list:
            return candidates(model.subdirectory, model_file, self.mirrors, offline=self.offline)
        return build

    def store(self, reporter, check_all: bool = False):
        folder = None
        if self.cache is not None:
            from omz_tools.download.cachestore import CacheStore
            folder = CacheStore(self.cache, reporter, check_all)
        if not self.tiers:
            return folder
        from omz_tools.download.tiers import TieredStore
        return TieredStore(folder, self.tiers, reporter, self.repair)

    def session_factory(self) -> Optional[Callable]:
        """Offline: a factory that refuses, so no code path can open a connection."""
        if not self.offline:
            return None

        def refuse():
            raise RuntimeError("offline mode: no network connection may be opened")
        return refuse

    def check_space(self, jobs_plan: list, output_dir: Path, free=None) -> int:
        """NotEnoughSpace if the files not yet present or cached do not fit (see space.py)."""
        from omz_tools.download import records

        planned = []
        for job in jobs_plan:
            for task in job.tasks:
                size = task.model_file.size
                present = False
                if os.path.isfile(task.target):  # cheap: the fetcher verifies it anyway
                    entry = records.FolderRecord(task.target.parent).file(task.target.name)
                    present = records.record_holds(entry, task.target) or \
                        os.path.getsize(task.target) == size
                cached = False
                if self.cache is not None:
                    checksum = task.model_file.checksum
                    try:
                        entry_path = self.cache.entry_path(checksum.algorithm, checksum.value)
                        cached = entry_path.stat().st_size == size
                    except OSError:
                        pass
                if self.offline and not (present or cached):
                    continue  # offline, it will not be fetched: it fails, it takes no space
                planned.append(PlannedFile(size, present=present, cached=cached))
        if any(not item.present for item in planned):  # something will be written there
            check_writable(Path(output_dir))
        return check_space(planned, Path(output_dir), self.cache.root if self.cache else None, free=free)


def missing_offline(task, store) -> str:
    """Why a file cannot be had offline; one paragraph (it does not start with the file's name:
    the reporter and the summary put that in front)."""
    checksum = task.model_file.checksum
    where = (f"nor in the cache {store.where() if hasattr(store, 'where') else store.cache.root}"
             if store is not None else "and no cache was given (--cache_dir)")
    return (f"not available offline (--offline or OMZ_OFFLINE=1): it is not at {task.target} "
            f"{where}; expected {task.model_file.size} bytes with {checksum.algorithm} {checksum.value}. "
            "Nothing was downloaded. Run once online (with --cache_dir to fill a cache), or put the "
            "file at that path.")

TIMEOUT_ENV = "OMZ_TIMEOUT"
MIN_RATE_ENV = "OMZ_MIN_RATE"
STALL_WINDOW_ENV = "OMZ_STALL_WINDOW"
DEFAULT_TIMEOUTS = (15.0, 60.0)  # connect, read (between two reads)
DEFAULT_MIN_RATE = 1024.0  # bytes/s, averaged over the stall window; 0 turns the check off
DEFAULT_STALL_WINDOW = 30.0  # seconds


@dataclass(frozen=True)
class NetLimits:
    """How long a connection may take and how slow a body may be before an attempt gives up.

    ``connect_timeout``/``read_timeout``: seconds to connect and between two reads.
    ``min_rate``/``stall_window``: an attempt that receives fewer than ``min_rate * stall_window``
    bytes in any ``stall_window`` seconds is ended (what arrived is kept and resumed), so a server
    trickling a byte a second cannot hold a run forever. ``min_rate`` 0 turns that off."""

    connect_timeout: float = DEFAULT_TIMEOUTS[0]
    read_timeout: float = DEFAULT_TIMEOUTS[1]
    min_rate: float = DEFAULT_MIN_RATE
    stall_window: float = DEFAULT_STALL_WINDOW

    @property
    def timeouts(self) -> tuple:
        return (self.connect_timeout, self.read_timeout)

    @classmethod
    def resolve(cls, timeout=None, min_rate=None, stall_window=None,
                env: Optional[Mapping[str, str]] = None) -> "NetLimits":
        """Arguments first, then $OMZ_TIMEOUT, $OMZ_MIN_RATE, $OMZ_STALL_WINDOW, then the defaults.
        ``timeout``: seconds for both, ``(connect, read)``, or a string "N" / "CONNECT,READ".
        ``min_rate``: bytes/s, or a string with a K/M suffix ("1K", "0.5M"). SourceConfigError
        (a usage error) for a bad value."""
        env = os.environ if env is None else env
        origin = "--timeout"
        if timeout is None and env.get(TIMEOUT_ENV, "").strip():
            timeout, origin = env[TIMEOUT_ENV], TIMEOUT_ENV
        connect, read = DEFAULT_TIMEOUTS if timeout is None else parse_timeout(timeout, origin)
        origin = "--min_rate"
        if min_rate is None and env.get(MIN_RATE_ENV, "").strip():
            min_rate, origin = env[MIN_RATE_ENV], MIN_RATE_ENV
        rate = DEFAULT_MIN_RATE if min_rate is None else parse_rate(min_rate, origin)
        origin = "--stall_window"
        if stall_window is None and env.get(STALL_WINDOW_ENV, "").strip():
            stall_window, origin = env[STALL_WINDOW_ENV], STALL_WINDOW_ENV
        window = DEFAULT_STALL_WINDOW if stall_window is None else _positive(stall_window, origin,
                                                                            "a number of seconds")
        return cls(connect, read, rate, window)


def _positive(value, origin: str, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (0 < number < 1e7):  # also refuses nan and inf
        raise SourceConfigError(f"{origin}: expected {what} greater than 0, found {value!r}.")
    return number


def parse_timeout(value, origin: str = "--timeout") -> tuple:
    """(connect, read) seconds from N, (C, R) or "C,R"."""
    if isinstance(value, (tuple, list)):
        parts = list(value)
    elif isinstance(value, (int, float)):
        parts = [value]
    else:
        parts = [p.strip() for p in str(value).split(",")]
    if len(parts) not in (1, 2):
        raise SourceConfigError(f"{origin}: expected SECONDS or CONNECT,READ seconds, found {value!r}.")
    numbers = [_positive(p, origin, "SECONDS or CONNECT,READ seconds") for p in parts]
    return (numbers[0], numbers[-1])


_RATE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20}


def parse_rate(value, origin: str = "--min_rate") -> float:
    """Bytes per second from a number or "1K", "0.5M" (binary units); 0 turns the check off."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number, unit = float(value), ""
    else:
        import re
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*?)(?:/s)?\s*", str(value))
        if not match or match.group(2).lower() not in _RATE_UNITS:
            raise SourceConfigError(f"{origin}: expected bytes per second such as 1024, 1K or 0.5M "
                                    f"(0 turns the check off), found {value!r}.")
        number, unit = float(match.group(1)), match.group(2).lower()
    if not (0 <= number < 1e12):
        raise SourceConfigError(f"{origin}: expected bytes per second, 0 or more, found {value!r}.")
    return number * _RATE_UNITS[unit]


def dry_run(jobs_plan: list, cache_dir=None, offline: bool = False, notes: Optional[list] = None) -> list:
    """What a run would do, without a connection and without writing anything: per file a dict
    {model, model_file, size, path, state, from} where state is "present" (its verification record
    holds), "present, to re-check" (right size, no valid record: hashed at download time),
    "cache" (an entry of that hash in ``cache_dir``), "fetch" or "missing" (offline); ``from``
    lists the sources in order (the cache entry, then mirrors, then the origin). An S3 cache tier
    among the sources is asked (one HEAD per file) whether it holds the file; why a bucket cannot
    be used is appended to ``notes``, once."""
    from omz_tools.download import records
    from omz_tools.download.cache import AREAS

    rows: list = []
    tiers: dict = {}  # s3:// URL -> S3Tier, made when a source names it
    for job in jobs_plan:
        for task in job.tasks:
            size = task.model_file.size
            checksum = task.model_file.checksum
            row = {"model": task.model_name, "model_file": task.name, "size": size, "path": str(task.target),
                   "from": []}
            state = "fetch"
            if task.consumed:
                state = "present"  # unpacked by postprocessing earlier: nothing to fetch
            elif os.path.isfile(task.target):
                entry = records.FolderRecord(task.target.parent).file(task.target.name)
                if entry and records.record_holds(entry, task.target):
                    state = "present"
                elif os.path.getsize(task.target) == size:
                    state = "present, to re-check"
            if state == "fetch" and cache_dir is not None and checksum.algorithm in AREAS:
                entry_path = (Path(cache_dir) / AREAS[checksum.algorithm] / checksum.value[:2]
                              / checksum.value[2:])
                try:
                    if entry_path.stat().st_size == size:
                        state = "cache"
                        row["from"].append(f"cache {entry_path}")
                except OSError:
                    pass
            if state == "fetch" and _bucket_holds(task, tiers, notes):
                state = "cache"
                row["from"] = [f"{s.label} ({s.url})" for s in task.sources if s.kind == "s3"][:1]
            if state == "fetch":
                row["from"] += [f"mirror {s.describe()}" if s.is_mirror else f"origin {s.describe()}"
                                for s in task.sources if s.kind != "s3"]
                if offline:
                    state = "missing"
            row["state"] = state
            rows.append(row)
    return rows


def _bucket_holds(task, tiers: dict, notes: Optional[list]) -> bool:
    """Whether an S3 cache tier among the task's sources holds an object at the file's hash."""
    checksum = task.model_file.checksum
    for source in task.sources:
        if source.kind != "s3":
            continue
        tier = tiers.get(source.tier)
        if tier is None:
            from omz_tools.download.s3cache import S3Tier
            tier = tiers[source.tier] = S3Tier(source.tier, limits=NetLimits(), num_attempts=1)
        found = tier.holds(checksum.algorithm, checksum.value, task.model_file.size)
        if found is None and notes is not None and tier.down not in notes:
            notes.append(tier.down)
        if found:
            return True
    return False
