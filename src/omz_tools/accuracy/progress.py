"""Accuracy-check progress: plain lines, a live status line on a terminal, or JSON events.

JSON events (one object per line on stdout, ``$type`` first): ``accuracy_check_begin``,
``accuracy_check_progress`` (at most about once a second), ``accuracy_check_image_error``,
``accuracy_check_end`` and a final ``accuracy_check_summary``.
"""

from __future__ import annotations

import sys
import time
from typing import Optional

from omz_tools.accuracy.engine import EvaluationResult, PrecisionResult, Reporter
from omz_tools.jsonlines import JsonLinesEmitter
from omz_tools.wording import printable

LISTED_ERRORS = 20  # unreadable images named in the text summary; JSON lists them all


class JsonReporter(JsonLinesEmitter, Reporter):
    def begin(self, model, precision, xml, images, requests, batch=1):
        self.emit("accuracy_check_begin", model=model, precision=precision, xml=str(xml), images=images,
                  infer_requests=requests, batch=batch)

    def progress(self, model, precision, done, total, rate, eta):
        self.emit("accuracy_check_progress", model=model, precision=precision, done=done, total=total,
                  images_per_second=round(rate, 2), eta_seconds=None if eta is None else round(eta, 1))

    def image_error(self, model, precision, image, message):
        self.emit("accuracy_check_image_error", model=model, precision=precision, image=str(image), message=message)

    def end(self, model, result):
        self.emit("accuracy_check_end", model=model, **result.as_dict())

    def summary(self, result):
        self.emit("accuracy_check_summary", **result.as_dict())
        if not result.ok:  # for people reading a CI log; stdout stays pure JSON
            sys.stderr.write("\n".join(verdict_lines(result)) + "\n")


def _pct(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100 * value:.3f} %"


def _metric_text(metric) -> str:
    text = f"top-{metric.top_k} {_pct(metric.value)}"
    if metric.reference is not None:
        diff = "" if metric.difference is None else f", {100 * metric.difference:+.3f}"
        text += f" (reference {100 * metric.reference:.3f} %{diff})"
    return text


def precision_line(model: str, result: PrecisionResult) -> str:
    tolerance = max((m.tolerance for m in result.metrics), default=0)
    verdicts = {
        "ok": f"OK (within ±{100 * tolerance:.2f} points)",
        "failed": f"FAILED (beyond ±{100 * tolerance:.2f} points)",
        "partial": "partial (--limit: not compared with the references)",
        "incomplete": f"INCOMPLETE ({len(result.unreadable)} image(s) could not be read)",
        "no reference": "no reference figures to compare with",
    }
    metrics = ", ".join(_metric_text(m) for m in result.metrics)
    return (f"{model} {result.precision}: {result.evaluated}/{result.images} images, {metrics}: "
            f"{verdicts[result.verdict]}; {result.images_per_second:.1f} images/s")


def verdict_lines(result: EvaluationResult) -> list:
    lines = [precision_line(result.model, r) for r in result.results.values()]
    unreadable = sorted({(str(p), m) for r in result.results.values() for p, m in r.unreadable})
    if unreadable:
        lines.append(f"{len(unreadable)} image(s) could not be read (the figures above leave them out):")
        lines += [f"  {printable(message)}" for _, message in unreadable[:LISTED_ERRORS]]
        if len(unreadable) > LISTED_ERRORS:
            lines.append(f"  ... and {len(unreadable) - LISTED_ERRORS} more (--progress_format json lists all)")
    return lines


class TextReporter(Reporter):
    """A status line on a terminal; otherwise a plain line every 10 seconds."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._last_line = 0.0
        self._status = False

    def _clear(self):
        if self._status:
            self.stream.write("\r\033[K")
            self._status = False

    def begin(self, model, precision, xml, images, requests, batch=1):
        self._clear()
        self.stream.write(printable(f"{model} {precision}: evaluating {images} images with {xml} ({requests} infer "
                                    f"requests{f' of {batch} images' if batch > 1 else ''})") + "\n")
        self.stream.flush()

    def progress(self, model, precision, done, total, rate, eta):
        eta_text = "" if eta is None else f", ETA {int(eta) // 60}m{int(eta) % 60:02d}s"
        text = f"{model} {precision}: {done}/{total} images, {rate:.1f} images/s{eta_text}"
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._status = True
        elif time.monotonic() - self._last_line >= 10:
            self._last_line = time.monotonic()
            self.stream.write(text + "\n")
        self.stream.flush()

    def image_error(self, model, precision, image, message):
        self._clear()
        sys.stderr.write(printable(f"{model} {precision}: skipped: {message}") + "\n")

    def end(self, model, result):
        self._clear()
        self.stream.write(precision_line(model, result) + "\n")
        self.stream.flush()

    def summary(self, result):
        self._clear()
        lines = verdict_lines(result)
        if len(result.results) > 1 or any(r.unreadable for r in result.results.values()):
            self.stream.write("Summary:\n" + "\n".join("  " + line for line in lines) + "\n")
        self.stream.flush()

    def close(self):
        self._clear()


def make_reporter(progress) -> Reporter:
    if progress in (None, False):
        return Reporter()
    if progress == "json":
        return JsonReporter()
    return TextReporter()
