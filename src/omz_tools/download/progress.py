"""Reporting: JSON events (omz_downloader's, plus retry/skip/error/summary), plain text lines,
or tqdm bars on a terminal. Every reporter is thread-safe; -j runs call them from many threads."""

from __future__ import annotations

import sys
import threading
import time

from omz_tools.wording import failed_lines, human_size, printable
from omz_tools.jsonlines import JsonLinesEmitter


class Reporter:
    """Says nothing. The base of the others, and what the Python API uses by default."""

    def model_begin(self, model: str, num_files: int) -> None: ...
    def model_end(self, model: str, ok: bool) -> None: ...
    def file_begin(self, model: str, file: str, size: int) -> None: ...
    def file_transfer(self, model: str, file: str, size: int, offset: int, url: str) -> None: ...
    def file_progress(self, model: str, file: str, done: int, size: int) -> None: ...
    # served_by: "original", "mirror <base URL>" or "cache <dir>"; "" when not fetched.
    def file_end(self, model: str, file: str, ok: bool, action: str = "", served_by: str = "") -> None: ...
    # file None: the whole model is skipped (e.g. not available in the requested precisions).
    def skip(self, model: str, file, reason: str) -> None: ...
    # message: the cause in a few words; attempts: how many attempts this source gets in all.
    def retry(self, model: str, file: str, attempt: int, delay: float, message: str,
              attempts: int = 0) -> None: ...
    def note(self, model: str, file: str, message: str) -> None: ...
    def error(self, model: str, file, message: str) -> None: ...
    def postprocessing_begin(self, model: str) -> None: ...
    def postprocessing_end(self, model: str, ok: bool = True) -> None: ...
    def summary(self, result) -> None: ...
    # interrupted: the run is being cancelled; clear anything drawn (bars) before the caller speaks.
    def close(self, interrupted: bool = False) -> None: ...


def served(result) -> list:
    """[{model, model_file, served_by, url}] for the files this run fetched or took from a cache."""
    return [{"model": o.task.model_name, "model_file": o.task.name, "served_by": o.served_by, "url": o.source}
            for o in result.files if o.ok and getattr(o, "served_by", "")]


def served_line(result) -> str:
    """'Served: 2 by mirror http://m, 1 by cache /c' (empty when nothing was fetched)."""
    counts: dict = {}
    for item in served(result):
        counts[item["served_by"]] = counts.get(item["served_by"], 0) + 1
    return ("Served: " + ", ".join(f"{n} by {who}" for who, n in counts.items())) if counts else ""


class JsonReporter(JsonLinesEmitter, Reporter):
    """One JSON object per line on stdout; ``$type``s and fields as omz_downloader's, plus new ones."""

    def model_begin(self, model, num_files):
        self.emit("model_download_begin", model=model, num_files=num_files)

    def model_end(self, model, ok):
        self.emit("model_download_end", model=model, successful=ok)

    def file_begin(self, model, file, size):
        self.emit("model_file_download_begin", model=model, model_file=file, size=size)

    def file_transfer(self, model, file, size, offset, url):
        if offset:
            self.emit("model_file_download_resume", model=model, model_file=file, offset=offset,
                      size=size, url=url, message=f"resuming at {human_size(offset)}")

    def file_progress(self, model, file, done, size):
        self.emit("model_file_download_progress", model=model, model_file=file, size=done)

    def file_end(self, model, file, ok, action="", served_by=""):
        extra = {"source": served_by} if served_by else {}
        if served_by.startswith("cache-s3 "):  # "source": "cache-s3", "cache": "s3://bucket/prefix"
            extra = {"source": "cache-s3", "cache": served_by.split(" ", 1)[1]}
        self.emit("model_file_download_end", model=model, model_file=file, successful=ok, **extra)

    def skip(self, model, file, reason):
        if file is None:
            self.emit("model_download_skip", model=model, reason=reason)
        else:
            self.emit("model_file_download_skip", model=model, model_file=file, reason=reason)

    def retry(self, model, file, attempt, delay, message, attempts=0):
        self.emit("model_file_download_retry", model=model, model_file=file, attempt=attempt,
                  num_attempts=attempts, delay=round(delay, 3), message=message)

    def note(self, model, file, message):
        if file is None:
            self.emit("model_download_note", model=model, message=message)
        else:
            self.emit("model_file_download_note", model=model, model_file=file, message=message)

    def error(self, model, file, message):
        if file is None:
            self.emit("model_download_error", model=model, message=message)
        else:
            self.emit("model_file_download_error", model=model, model_file=file, message=message)

    def postprocessing_begin(self, model):
        self.emit("model_postprocessing_begin", model=model)

    def postprocessing_end(self, model, ok=True):
        self.emit("model_postprocessing_end", model=model)

    def summary(self, result):
        self.emit("download_summary", successful=sorted(result.successes),
                  failed=[{"model": m, "message": msg} for m, msg in result.failures.items()],
                  files_downloaded=result.count("downloaded") + result.count("resumed"),
                  files_present=result.count("present"), bytes_downloaded=result.bytes_downloaded,
                  seconds=round(result.seconds, 3), served=served(result))
        if result.failures:  # also for people reading a CI log; stdout stays pure JSON
            sys.stderr.write("\n".join(failed_lines(result)) + "\n")


class TextReporter(Reporter):
    """Plain lines for logs: a line per file begun, finished or skipped, progress every few seconds."""

    PROGRESS_EVERY = 5.0

    def __init__(self, stream=None, err=None):
        self.stream = stream or sys.stdout
        self.err = err or sys.stderr
        self._lock = threading.Lock()
        self._last: dict = {}
        self._started: dict = {}

    def _out(self, text: str, err: bool = False) -> None:
        stream = self.err if err else self.stream
        with self._lock:
            stream.write(printable(text, keep="\n") + "\n")  # file names, URLs, servers' words: never raw
            stream.flush()

    def model_begin(self, model, num_files):
        self._out(f"========== {model}: {num_files} file{'s' if num_files != 1 else ''}")

    def file_transfer(self, model, file, size, offset, url):
        self._started[(model, file)] = (time.monotonic(), offset)
        self._last[(model, file)] = time.monotonic()
        resume = f", resuming at {human_size(offset)}" if offset else ""
        self._out(f"Downloading {model}/{file} ({human_size(size)}{resume}) from {url}")

    def file_progress(self, model, file, done, size):
        now = time.monotonic()
        if now - self._last.get((model, file), now) >= self.PROGRESS_EVERY and done < size:
            self._last[(model, file)] = now
            self._out(f"... {model}/{file}: {done * 100 // max(size, 1)}%, {human_size(done)} of "
                      f"{human_size(size)}")

    def file_end(self, model, file, ok, action="", served_by=""):
        if ok and action in ("downloaded", "resumed"):
            began, offset = self._started.pop((model, file), (time.monotonic(), 0))
            seconds = max(time.monotonic() - began, 1e-6)
            source = f" from {served_by}" if served_by else ""
            self._out(f"Verified {model}/{file} ({action}{source}, {seconds:.1f} s)")

    def skip(self, model, file, reason):
        self._out(printable(f"Skipped {model}/{file}: {reason}" if file is not None else f"Skipped {model}: {reason}"))

    def retry(self, model, file, attempt, delay, message, attempts=0):
        of = f"/{attempts}" if attempts else ""
        self._out(printable(f"Retrying {model}/{file} (attempt {attempt}{of}) in {delay:.1f} s: {message}"), err=True)

    def note(self, model, file, message):
        where = f"{model}/{file}" if file else model
        self._out(printable(f"Note: {where}: {message}"), err=True)

    def error(self, model, file, message):
        where = f"{model}/{file}" if file else model
        self._out(printable(f"Error: {where}: {message}"), err=True)

    def postprocessing_begin(self, model):
        self._out(f"Postprocessing {model}")

    def summary(self, result):
        done = result.count("downloaded") + result.count("resumed")
        if any(item["served_by"] != "original" for item in served(result)):  # mirrors or a cache
            self._out(served_line(result))
        self._out(f"Done: {len(result.successes)} model(s) ready, {len(result.failures)} failed; "
                  f"{done} file(s) downloaded ({human_size(result.bytes_downloaded)}), "
                  f"{result.count('present')} already present; {result.seconds:.1f} s")
        if result.failures:
            self._out("\n".join(failed_lines(result)), err=True)


class QuietReporter(TextReporter):
    """-q: only errors and the FAILED: list (on stderr); nothing on stdout."""

    def _out(self, text: str, err: bool = False) -> None:
        if err:
            super()._out(text, err)

    def retry(self, model, file, attempt, delay, message, attempts=0): ...
    def note(self, model, file, message): ...


class TqdmReporter(TextReporter):
    """A bar per file being transferred and a total bar, on a terminal."""

    def __init__(self, total_bytes: int, stream=None, err=None):
        super().__init__(stream, err)
        from tqdm import tqdm
        self._tqdm = tqdm
        self._bars: dict = {}
        self._sizes: dict = {}
        self._total = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024,
                           desc="total", position=0, leave=True, dynamic_ncols=True)

    def _out(self, text: str, err: bool = False) -> None:
        with self._lock:
            self._tqdm.write(printable(text, keep="\n"), file=self.err if err else self.stream)

    def model_begin(self, model, num_files):
        pass  # the bars say enough

    def file_begin(self, model, file, size):
        self._sizes[(model, file)] = size

    def file_transfer(self, model, file, size, offset, url):
        with self._lock:
            old = self._bars.pop((model, file), None)
            if old:  # a retry: replace its bar, and take back what the total counted for it
                old[0].close()
                self._total.update(-old[1])
            bar = self._tqdm(total=size, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                             desc=printable(file if len(file) <= 30 else "..." + file[-27:]), leave=False,
                             dynamic_ncols=True)
            self._bars[(model, file)] = [bar, offset]
            self._total.update(offset)
        if offset:
            self._out(f"Resuming {model}/{file} at {human_size(offset)} of {human_size(size)}")

    def file_progress(self, model, file, done, size):
        with self._lock:
            entry = self._bars.get((model, file))
            if entry:
                entry[0].update(done - entry[1])
                self._total.update(done - entry[1])
                entry[1] = done

    def file_end(self, model, file, ok, action="", served_by=""):
        with self._lock:
            entry = self._bars.pop((model, file), None)
            if entry:
                entry[0].close()
        if ok and action in ("downloaded", "resumed"):
            self._out(f"Verified {model}/{file}" + (f" from {served_by}" if served_by else ""))

    def skip(self, model, file, reason):
        with self._lock:
            self._total.update(self._sizes.get((model, file), 0))  # counts as done
        super().skip(model, file, reason)

    def summary(self, result):
        with self._lock:
            self._total.close()
        super().summary(result)

    def close(self, interrupted: bool = False):
        """On an interrupt, erase every bar so that the next line starts on a clean line."""
        if not interrupted:
            return
        with self._lock:
            for bar, _ in list(self._bars.values()):
                bar.leave = False
                bar.close()
            self._bars.clear()
            self._total.leave = False
            self._total.close()
            for stream in (self.stream, self.err):
                try:
                    stream.write("\r\x1b[K")  # the terminal's ^C echo, if any, goes too
                    stream.flush()
                except (OSError, ValueError):
                    pass


def make_reporter(progress_format: str, total_bytes: int = 0) -> Reporter:
    """JSON events, tqdm bars on a terminal, else plain lines."""
    if progress_format == "json":
        return JsonReporter()
    if progress_format == "text" and sys.stdout.isatty() and sys.stderr.isatty():
        return TqdmReporter(total_bytes)
    return TextReporter()
