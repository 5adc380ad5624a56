"""Conversion progress: plain lines, a live status line on a terminal, or JSON events.

JSON events follow the downloader's style (one object per line on stdout, ``$type`` first):
``model_conversion_begin``, ``model_conversion_phase`` (check; mo or native, then fp16; or ovc,
which saves every precision itself; verify, install), ``model_conversion_heartbeat`` (every HEARTBEAT_SECONDS while a phase runs),
``model_conversion_command`` (--dry_run), ``model_conversion_skip``, ``model_conversion_error``,
``model_conversion_end`` and a final ``conversion_summary`` (with ``irs``: each IR's path, backend,
the figures checked and the model card's).

Off a terminal, plain text and JSON get a heartbeat too, so a log shows a conversion is alive
during minutes of Model Optimizer: every HEARTBEAT_SECONDS (15, or $OMZ_HEARTBEAT_SECONDS).
"""

from __future__ import annotations

import os
import sys
import threading
import time

from omz_tools.wording import failed_lines, printable  # the downloader's FAILED: list, same form
from omz_tools.jsonlines import JsonLinesEmitter


def _heartbeat_seconds() -> float:
    try:
        value = float(os.environ.get("OMZ_HEARTBEAT_SECONDS", "") or 15)
    except ValueError:
        value = 15.0
    return value if value > 0 else 15.0


class Heartbeat:
    """Calls ``emit(model, phase, phase_seconds, model_seconds)`` every ``interval`` seconds for
    each model whose current phase has been running that long without a line."""

    def __init__(self, emit, interval: float = None):
        self.emit = emit
        self.interval = interval or _heartbeat_seconds()
        self._state: dict = {}  # model -> [phase, phase_began, model_began, last_line]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def begin(self, model: str) -> None:
        with self._lock:
            self._state[model] = [None, time.monotonic(), time.monotonic(), time.monotonic()]

    def phase(self, model: str, phase: str) -> None:
        now = time.monotonic()
        with self._lock:
            state = self._state.setdefault(model, [None, now, now, now])
            state[0], state[1], state[3] = phase, now, now
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="omz-convert-heartbeat", daemon=True)
                self._thread.start()

    def end(self, model: str) -> None:
        with self._lock:
            self._state.pop(model, None)

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.interval / 3)):
            now, due = time.monotonic(), []
            with self._lock:
                for model, state in self._state.items():
                    if state[0] and now - state[3] >= self.interval:
                        state[3] = now
                        due.append((model, state[0], now - state[1], now - state[2]))
            for item in due:
                self.emit(*item)


class Reporter:
    """Silent reporter; the base of the others (the Python API's default)."""

    def model_begin(self, model: str, precisions: list) -> None: ...
    def phase(self, model: str, phase: str, detail: str = "") -> None: ...
    def command(self, model: str, cmd: list, text: str) -> None: ...
    def skip(self, model: str, reason: str) -> None: ...
    def error(self, model: str, message: str, detail: str = "") -> None: ...
    def model_end(self, model: str, ok: bool, seconds: float, phases: dict) -> None: ...
    def heartbeat(self, model: str, phase: str, phase_seconds: float, seconds: float = None) -> None: ...
    def summary(self, result) -> None: ...
    def close(self) -> None: ...


def installed_lines(result) -> list:
    """Where each IR is, and the figures it was checked against (model card), one line per IR."""
    lines = []
    for outs in result.outcomes.values():
        for outcome in outs:
            if not outcome.ok or not outcome.irs:
                continue
            checked = _checked_text(outcome)
            for precision, xml in outcome.irs.items():
                lines.append(f"{outcome.model} {precision}: {xml}{checked}")
    return lines


def installed_irs(result) -> list:
    """conversion_summary's ``irs``: one object per IR installed or up to date."""
    irs = []
    for outs in result.outcomes.values():
        for outcome in outs:
            if not outcome.ok or not outcome.irs:
                continue
            figures = outcome.figures
            if figures is not None and not isinstance(figures, dict):
                figures = {"inputs": figures.inputs, "outputs": figures.outputs, "params": figures.params,
                           "gflops": round(figures.gflops, 6)}
            for precision, xml in outcome.irs.items():
                irs.append({"model": outcome.model, "precision": precision, "path": str(xml),
                            "backend": getattr(outcome, "backend", ""), "up_to_date": outcome.skipped,
                            "figures": figures, "card": getattr(outcome, "card", {})})
    return irs


def _checked_text(outcome) -> str:
    figures = outcome.figures
    if figures is None:
        return ""
    if not isinstance(figures, dict):
        figures = {"inputs": figures.inputs, "outputs": figures.outputs, "params": figures.params,
                   "gflops": figures.gflops}
    card = getattr(outcome, "card", None) or {}
    parts = []
    for kind in ("inputs", "outputs"):
        ports = figures.get(kind) or {}
        if ports:
            parts.append(f"{kind[:-1] if len(ports) == 1 else kind} " +
                         ", ".join(f"{n} {'x'.join(map(str, shape))}" for n, shape in ports.items()))
    if figures.get("params") is not None:
        parts.append(f"{figures['params'] / 1e6:.3f} M parameters" +
                     (f" (card {float(card['mparams']):.3f})" if "mparams" in card else ""))
    if figures.get("gflops") is not None:
        parts.append(f"{figures['gflops']:.3f} GFLOPs" +
                     (f" (card {float(card['gflops']):.3f})" if "gflops" in card else ""))
    backend = getattr(outcome, "backend", "")
    return f" [{'; '.join(parts)}{'; ' + backend if backend else ''}]" if parts else ""


class LoggingReporter(Reporter):
    """Progress as records on a ``logging.Logger`` (``omz_tools.load()`` off a terminal)."""

    def __init__(self, logger):
        self.logger = logger
        self._began: dict = {}
        self._beat = Heartbeat(lambda m, p, ps, s: self.heartbeat(m, p, ps))

    def _elapsed(self, model: str) -> float:
        return time.monotonic() - self._began.get(model, time.monotonic())

    def model_begin(self, model, precisions):
        self._began[model] = time.monotonic()
        self._beat.begin(model)
        self.logger.info("%s: converting to %s", model, ", ".join(precisions))

    def phase(self, model, phase, detail=""):
        self._beat.phase(model, phase)
        self.logger.info("%s: %.1f s %s%s", model, self._elapsed(model), phase, f": {detail}" if detail else "")

    def heartbeat(self, model, phase, seconds):
        self.logger.info("%s: %s still running (%.0f s)", model, phase, seconds)

    def skip(self, model, reason):
        self.logger.info("%s: skipped: %s", model, reason)

    def error(self, model, message, detail=""):
        self.logger.error("%s: %s", model, message)

    def model_end(self, model, ok, seconds, phases):
        self._beat.end(model)
        self.logger.info("%s: %s after %.1f s", model, "done" if ok else "FAILED", seconds)

    def summary(self, result):
        for line in installed_lines(result):
            self.logger.info("%s", line)

    def close(self):
        self._beat.close()


class JsonReporter(JsonLinesEmitter, Reporter):
    _beat = None

    def _heartbeat(self) -> Heartbeat:
        if self._beat is None:
            self._beat = Heartbeat(self.heartbeat)
        return self._beat

    def model_begin(self, model, precisions):
        self._heartbeat().begin(model)
        self.emit("model_conversion_begin", model=model, precisions=precisions)

    def phase(self, model, phase, detail=""):
        self._heartbeat().phase(model, phase)
        self.emit("model_conversion_phase", model=model, phase=phase, detail=detail)

    def heartbeat(self, model, phase, phase_seconds, seconds=None):
        self.emit("model_conversion_heartbeat", model=model, phase=phase, phase_seconds=round(phase_seconds, 1),
                  seconds=round(seconds if seconds is not None else phase_seconds, 1))

    def close(self):
        if self._beat is not None:
            self._beat.close()

    def command(self, model, cmd, text):
        self.emit("model_conversion_command", model=model, command=[str(c) for c in cmd])

    def skip(self, model, reason):
        self.emit("model_conversion_skip", model=model, reason=reason)

    def error(self, model, message, detail=""):
        self.emit("model_conversion_error", model=model, message=message, detail=detail)

    def model_end(self, model, ok, seconds, phases):
        self._heartbeat().end(model)
        self.emit("model_conversion_end", model=model, successful=ok, seconds=round(seconds, 3),
                  phases={k: round(v, 3) for k, v in phases.items()})

    def summary(self, result):
        self.emit("conversion_summary", successful=sorted(result.successes),
                  skipped=sorted(result.skipped), failed=[{"model": m, "message": msg}
                                                          for m, msg in result.failures.items()],
                  seconds=round(result.seconds, 3), irs=installed_irs(result))
        if result.failures:  # for people reading a CI log; stdout stays pure JSON
            sys.stderr.write("\n".join(failed_lines(result)) + "\n")


class TextReporter(Reporter):
    """A line per phase begun (with the model's elapsed time), per skip, error and model done.

    ``group`` (for -j): a model's lines are held back and written together when it ends, so the
    output of models converted at once does not interleave (as omz_converter's -j does)."""

    def __init__(self, stream=None, err=None, group: bool = False, heartbeat: bool = True):
        self.stream = stream or sys.stdout
        self.err = err or sys.stderr
        self.group = group
        self._lock = threading.Lock()
        self._began: dict = {}
        self._held: dict = {}  # model -> [(text, err)] while grouping
        self._beat = Heartbeat(self.heartbeat) if heartbeat else None

    def _line(self, model: str, text: str, err: bool = False) -> None:
        with self._lock:
            held = self._held.get(model)
            if held is not None:
                held.append((text, err))
                return
        self._out(text, err)

    def _release(self, model: str) -> None:
        with self._lock:  # all of them under one hold: two models ending at once do not interleave
            for text, err in self._held.pop(model, []):
                self._write(text, err)

    def _out(self, text: str, err: bool = False) -> None:
        with self._lock:
            self._write(text, err)

    def _write(self, text: str, err: bool) -> None:
        stream = self.err if err else self.stream
        stream.write(printable(text, keep="\n") + "\n")  # names from files never reach the terminal raw
        stream.flush()

    def _elapsed(self, model: str) -> float:
        return time.monotonic() - self._began.get(model, time.monotonic())

    def model_begin(self, model, precisions):
        self._began[model] = time.monotonic()
        if self._beat:
            self._beat.begin(model)
        if self.group:
            with self._lock:
                self._held[model] = []
        self._line(model, f"========== {model}: converting to {', '.join(precisions)}")

    def phase(self, model, phase, detail=""):
        if self._beat:
            self._beat.phase(model, phase)
        self._line(model, f"[{model}] {self._elapsed(model):6.1f} s  {phase}{': ' + printable(detail) if detail else ''}")

    def heartbeat(self, model, phase, phase_seconds, seconds=None):
        # Written at once, even while a model's lines are held back (-j): it says the run is alive.
        self._out(f"  ... {model}: {phase} running for {phase_seconds:.0f} s "
                  f"({seconds if seconds is not None else phase_seconds:.0f} s since it began)")

    def command(self, model, cmd, text):
        self._line(model, printable(text))

    def skip(self, model, reason):
        self._line(model, f"Skipped {model}: {printable(reason)}")

    def error(self, model, message, detail=""):
        # One line for the message whatever names it holds; the detail (a log's tail) line by line.
        lines = [f"Error: {model}: {printable(message)}", *map(printable, detail.splitlines())]
        self._line(model, "\n".join(lines), err=True)

    def model_end(self, model, ok, seconds, phases):
        if self._beat:
            self._beat.end(model)
        if ok and phases:
            times = ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
            self._line(model, f"[{model}] {seconds:6.1f} s  done ({times})")
        self._release(model)

    def close(self):
        if self._beat:
            self._beat.close()
        for model in list(self._held):  # interrupted: show what the unfinished models got to
            self._release(model)

    def summary(self, result):
        self._out(f"Done: {len(result.successes)} model(s) converted or up to date "
                  f"({len(result.skipped)} skipped as up to date), {len(result.failures)} failed; "
                  f"{result.seconds:.1f} s")
        lines = installed_lines(result)
        if lines:
            self._out("IR, with the figures checked against the model card:\n" +
                      "\n".join("  " + line for line in lines))
        if result.failures:
            self._out("\n".join(failed_lines(result)), err=True)


class TtyReporter(TextReporter):
    """TextReporter plus a status line, redrawn every second, with each active model's phase and time."""

    def __init__(self, stream=None, err=None, group: bool = False):
        super().__init__(stream, err, group, heartbeat=False)
        self._active: dict = {}
        self._status_shown = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._thread.start()

    def _clear(self) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[K")
            self._status_shown = False

    def _write(self, text: str, err: bool) -> None:  # called with the lock held
        self._clear()
        (self.err if err else self.stream).write(printable(text, keep="\n") + "\n")
        self._draw()

    def _draw(self) -> None:
        if not self._active:
            return
        now = time.monotonic()
        parts = [f"{m}: {p} {now - self._began.get(m, now):.0f} s" for m, p in self._active.items()]
        self.stream.write("\r\x1b[K" + " | ".join(parts)[:200])
        self.stream.flush()
        self._status_shown = True

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                self._draw()

    def phase(self, model, phase, detail=""):
        self._active[model] = phase
        super().phase(model, phase, detail)

    def model_end(self, model, ok, seconds, phases):
        self._active.pop(model, None)
        super().model_end(model, ok, seconds, phases)

    def close(self):
        self._stop.set()
        with self._lock:
            self._active.clear()
            self._clear()
            self.stream.flush()
        super().close()


def make_reporter(progress_format, jobs: int = 1) -> Reporter:
    """JSON events, a live status line on a terminal, else plain lines (grouped per model with -j)."""
    if progress_format in (None, False, "none"):
        return Reporter()
    if isinstance(progress_format, Reporter):
        return progress_format
    if progress_format == "json":
        return JsonReporter()
    if sys.stdout.isatty():
        return TtyReporter(group=jobs > 1)
    return TextReporter(group=jobs > 1)
