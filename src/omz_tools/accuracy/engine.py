"""Evaluating IRs: images decoded and preprocessed on a thread pool while OpenVINO's asynchronous
infer requests run the model, top-k counted per image, figures compared with the references.

The pipeline keeps a bounded window of images in flight (decoding ahead of inference by about
two images per worker and a batch per request), so memory stays flat on 50,000 images. OpenCV and
OpenVINO release the GIL in their heavy calls, so the decode threads and the inference streams
overlap. Where the model allows it (a batch dimension of 1 that reshapes to N, giving N outputs of
the same size), N images go in one inference: fewer, larger kernel calls. On 2 cores SE-ResNet-101
gained 2 % from batch 4 over batch 1 at the same hint and requests when nothing else ran, and up to
35 % while other work shared the cores; batch 8 and 16 were no faster than 4.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from omz_tools.accuracy.config import Protocol, _show
from omz_tools.accuracy.preprocess import ImageError, prepare
from omz_tools.errors import OmzError

# Default tolerances (fractions, i.e. 0.005 = 0.5 percentage points) between a full run's figures and
# the references; quantized IR is allowed the usual 1 point of post-training quantization.
DEFAULT_TOLERANCE = 0.005
DEFAULT_TOLERANCE_INT8 = 0.01
DEFAULT_BATCH = 4
PRECISION_ORDER = ("FP32", "FP16", "FP16-INT8", "FP32-INT8")


class EvaluationError(OmzError):
    """The IR cannot be evaluated (missing, unreadable, does not fit the protocol)."""


@dataclass
class MetricResult:
    name: str
    top_k: int
    correct: int
    value: Optional[float]  # fraction; None when no image was evaluated
    reference: Optional[float]
    difference: Optional[float]
    tolerance: float
    within: Optional[bool]

    def as_dict(self) -> dict:
        return {"name": self.name, "top_k": self.top_k, "correct": self.correct, "value": self.value,
                "reference": self.reference, "difference": self.difference, "tolerance": self.tolerance,
                "within_tolerance": self.within}


@dataclass
class PrecisionResult:
    precision: str
    xml: Path
    images: int  # images the run was asked to evaluate
    evaluated: int
    unreadable: list = field(default_factory=list)  # [(path, message)]
    metrics: list = field(default_factory=list)  # [MetricResult]
    verdict: str = ""  # ok, failed, partial, incomplete, no reference
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verdict in ("ok", "partial", "no reference")

    @property
    def images_per_second(self) -> float:
        return self.evaluated / self.seconds if self.seconds > 0 else 0.0

    def metric(self, top_k: int) -> Optional[MetricResult]:
        return next((m for m in self.metrics if m.top_k == top_k), None)

    def as_dict(self) -> dict:
        return {"precision": self.precision, "xml": str(self.xml), "images": self.images,
                "evaluated": self.evaluated, "unreadable": len(self.unreadable),
                "metrics": [m.as_dict() for m in self.metrics], "verdict": self.verdict,
                "seconds": round(self.seconds, 3), "images_per_second": round(self.images_per_second, 2)}


@dataclass
class EvaluationResult:
    model: str
    dataset: str
    results: dict = field(default_factory=dict)  # precision -> PrecisionResult
    total_images: int = 0  # lines of the annotation
    limited: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results.values())

    def as_dict(self) -> dict:
        unreadable = sorted({(str(p), m) for r in self.results.values() for p, m in r.unreadable})
        return {"model": self.model, "dataset": self.dataset, "successful": self.ok,
                "annotation_images": self.total_images, "partial": self.limited,
                "results": [r.as_dict() for r in self.results.values()],
                "unreadable": [{"image": p, "message": m} for p, m in unreadable]}


class Reporter:
    """Silent reporter (the Python API's default); see omz_tools.accuracy.progress."""

    def begin(self, model: str, precision: str, xml: Path, images: int, requests: int, batch: int = 1) -> None: ...
    def progress(self, model: str, precision: str, done: int, total: int, rate: float, eta: Optional[float]) -> None: ...
    def image_error(self, model: str, precision: str, image: Path, message: str) -> None: ...
    def end(self, model: str, result: PrecisionResult) -> None: ...
    def summary(self, result: EvaluationResult) -> None: ...
    def close(self) -> None: ...


def _output_index(model, protocol: Protocol, xml: Path) -> int:
    names = [sorted(o.get_names()) for o in model.outputs]
    if protocol.output_blob is not None:
        for index, output in enumerate(model.outputs):
            if protocol.output_blob in output.get_names():
                return index
        raise EvaluationError(f"{xml}: the adapter's output_blob {_show(protocol.output_blob)} is not an output of the IR "
                              f"(outputs: {names})")
    if len(model.outputs) != 1:
        raise EvaluationError(f"{xml}: the IR has {len(model.outputs)} outputs {names}; name the classification "
                              f"one with adapter: {{type: classification, output_blob: NAME}} in {protocol.path.name}")
    return 0


def ir_classes(xml: Path, protocol: Protocol) -> int:
    """Number of classes of the IR's classification output (for range-checking the annotation)."""
    import openvino as ov
    model = _read(ov.Core(), xml)
    shape = model.outputs[_output_index(model, protocol, xml)].get_partial_shape()
    if shape.is_dynamic:
        raise EvaluationError(f"{xml}: the classification output has a dynamic shape {shape}")
    return int(np.prod([d for d in shape.to_shape()[1:]]))


def _read(core, xml: Path):
    try:
        return core.read_model(str(xml))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EvaluationError(f"{xml}: OpenVINO cannot read this IR: {first}") from None


def _batched(core, xml: Path, shape: list, out_index: int, batch: int):
    """(model reshaped to ``batch`` images, batch) when the model allows it, else (None, 1). Allowed:
    the input's first dimension is 1, the reshape succeeds and the classification output becomes N
    rows of the size it had for one image (a model that folds the batch away is left alone)."""
    if batch <= 1 or not shape or shape[0] != 1:
        return None, 1
    model = _read(core, xml)
    single = model.outputs[out_index].get_partial_shape()
    try:
        model.reshape({model.inputs[0]: [batch] + shape[1:]})
    except RuntimeError:
        return None, 1
    output = model.outputs[out_index].get_partial_shape()
    if single.is_dynamic or output.is_dynamic:
        return None, 1
    single, output = list(single.to_shape()), list(output.to_shape())
    if not single or single[0] != 1 or output != [batch] + single[1:]:
        return None, 1
    return model, batch


def run_precision(model_name: str, precision: str, xml: Path, samples: list, protocol: Protocol, *,
                  jobs: int, reporter: Reporter, device: str = "CPU", tolerance: Optional[float] = None,
                  card: Optional[dict] = None, partial: bool = False,
                  batch: Optional[int] = None) -> PrecisionResult:
    """Evaluate one IR on ``samples`` (all carrying labels). ``batch``: images per inference where the
    model allows it (default DEFAULT_BATCH, never more than the images; 1: one at a time)."""
    import openvino as ov
    core = ov.Core()
    compiled, shape, out_index, batch = _compile(core, xml, protocol, len(samples), device=device, batch=batch)
    try:
        requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    except RuntimeError:
        requests = 2
    requests = max(1, requests)
    count = len(samples)
    scores = _Scores(count, max(m.top_k for m in protocol.metrics), batch, out_index)
    queue = ov.AsyncInferQueue(compiled, requests)
    queue.set_callback(scores.on_done)
    reporter.begin(model_name, precision, xml, count, requests, batch)
    feed = _Feed(queue, scores, batch, reporter, model_name, precision)
    _pipeline(feed, samples, protocol, shape, jobs=jobs, depth=requests * batch + 2 * jobs)
    seconds = time.monotonic() - feed.start
    evaluated = int(scores.done.sum())
    metrics = _metrics(protocol, precision, samples, scores, evaluated, tolerance=tolerance, card=card)
    result = PrecisionResult(precision, xml, count, evaluated, feed.unreadable, metrics, seconds=seconds)
    result.verdict = _verdict(result, partial)
    reporter.end(model_name, result)
    return result


def _compile(core, xml: Path, protocol: Protocol, count: int, *, device: str, batch: Optional[int]):
    """(compiled model, input shape, classification output index, images per inference) of one IR."""
    model = _read(core, xml)
    if len(model.inputs) != 1:
        raise EvaluationError(f"{xml}: the IR has {len(model.inputs)} inputs; a classification protocol feeds one")
    input_shape = model.inputs[0].get_partial_shape()
    if input_shape.is_dynamic:
        raise EvaluationError(f"{xml}: the input has a dynamic shape {input_shape}; expected a static NCHW shape")
    shape = list(input_shape.to_shape())
    out_index = _output_index(model, protocol, xml)
    wanted = DEFAULT_BATCH if batch is None else batch
    batched, batch = _batched(core, xml, shape, out_index, min(wanted, max(1, count)))
    model = batched or model
    compiled = core.compile_model(model, device, {"PERFORMANCE_HINT": "THROUGHPUT"})
    return compiled, shape, out_index, batch


class _Scores:
    """The top-k classes of every image, filled in by the inference callbacks."""

    def __init__(self, count: int, max_k: int, batch: int, out_index: int):
        self.top = np.full((count, max_k), -1, dtype=np.int64)
        self.done = np.zeros(count, dtype=bool)
        self.batch, self.out_index, self.max_k = batch, out_index, max_k
        self.finished = 0
        self.lock = threading.Lock()

    def on_done(self, request, indices) -> None:
        scores = request.get_output_tensor(self.out_index).data.reshape(self.batch, -1)
        for row, index in enumerate(indices):  # rows past the indices are padding
            # A stable sort: equal scores rank by class index, as numpy's argsort in OMZ's adapter.
            self.top[index] = np.argsort(-scores[row], kind="stable")[:self.max_k]
            self.done[index] = True
        with self.lock:
            self.finished += len(indices)


class _Feed:
    """Collects decoded images into batches for the infer queue and reports progress about once a second."""

    def __init__(self, queue, scores: _Scores, batch: int, reporter: Reporter, model_name: str, precision: str):
        self.queue, self.scores, self.batch, self.reporter = queue, scores, batch, reporter
        self.model_name, self.precision = model_name, precision
        self.count = len(scores.done)
        self.unreadable: list = []
        self.filling: list = []  # (index, tensor) of the next batch
        self.start = self.last_report = time.monotonic()

    def unreadable_image(self, path: Path, exc: ImageError) -> None:
        self.unreadable.append((path, str(exc)))
        self.reporter.image_error(self.model_name, self.precision, path, str(exc))

    def add(self, index: int, tensor) -> None:
        self.filling.append((index, tensor))
        if len(self.filling) == self.batch:
            self.submit()
        now = time.monotonic()
        if now - self.last_report >= 1.0:
            self.last_report = now
            with self.scores.lock:
                completed = self.scores.finished
            rate = completed / (now - self.start) if completed else 0.0
            left = self.count - completed - len(self.unreadable)
            self.reporter.progress(self.model_name, self.precision, completed, self.count, rate,
                                   left / rate if rate else None)

    def submit(self) -> None:
        tensors = [t for _, t in self.filling]
        tensors += [np.zeros_like(tensors[0])] * (self.batch - len(tensors))
        self.queue.start_async({0: np.concatenate(tensors) if self.batch > 1 else tensors[0]},
                               [i for i, _ in self.filling])
        self.filling.clear()

    def finish(self) -> None:
        if self.filling:
            self.submit()
        self.queue.wait_all()


def _pipeline(feed: _Feed, samples: list, protocol: Protocol, shape: list, *, jobs: int, depth: int) -> None:
    """Decode on ``jobs`` threads, at most ``depth`` images ahead, and feed them in the annotation's order."""
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="omz-decode") as pool:
        window: collections.deque = collections.deque()
        pending = iter(enumerate(samples))

        def refill():
            while len(window) < depth:
                item = next(pending, None)
                if item is None:
                    return
                index, sample = item
                window.append((index, sample, pool.submit(prepare, sample.path, protocol.steps, shape)))
        try:
            refill()
            while window:
                index, sample, future = window.popleft()
                refill()
                try:
                    tensor = future.result()
                except ImageError as exc:
                    feed.unreadable_image(sample.path, exc)
                    continue
                feed.add(index, tensor)
            feed.finish()
        except BaseException:
            for _, _, future in window:
                future.cancel()
            raise


def _metrics(protocol: Protocol, precision: str, samples: list, scores: _Scores, evaluated: int, *,
             tolerance: Optional[float], card: Optional[dict]) -> list:
    labels = np.array([s.label for s in samples], dtype=np.int64)
    metrics = []
    for metric in protocol.metrics:
        correct = int(((scores.top[:, :metric.top_k] == labels[:, None]).any(axis=1) & scores.done).sum())
        value = correct / evaluated if evaluated else None
        reference = metric.reference
        if reference is None and card and metric.top_k in (1, 5) and f"top{metric.top_k}" in card:
            reference = float(card[f"top{metric.top_k}"]) / 100
        if metric.abs_threshold is not None:
            tol = metric.abs_threshold
        elif tolerance is not None:
            tol = tolerance
        else:
            tol = DEFAULT_TOLERANCE_INT8 if "INT" in precision else DEFAULT_TOLERANCE
        difference = None if value is None or reference is None else value - reference
        # 1e-9: the figures are ratios of integers, compared with references written to 5 digits.
        within = None if difference is None else abs(difference) <= tol + 1e-9
        metrics.append(MetricResult(metric.name, metric.top_k, correct, value, reference, difference, tol, within))
    return metrics


def _verdict(result: PrecisionResult, partial: bool) -> str:
    metrics = result.metrics
    if result.unreadable or result.evaluated < result.images:
        return "incomplete"
    if partial:
        return "partial"
    if all(m.within is None for m in metrics):
        return "no reference"
    if all(m.within is not False for m in metrics):
        return "ok"
    return "failed"
