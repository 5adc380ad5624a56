"""Accuracy check of converted IR against the model's protocol (``omz_tools.evaluate``).

>>> import omz_tools
>>> result = omz_tools.evaluate("se-resnet-101", dataset="ILSVRC2012_img_val", annotation="val15.txt",
...                             converted_dir="models")
>>> result.ok, result.results["FP16"].metric(1).value     # (True, 0.7825...)

Modules: ``config`` (Open Model Zoo's accuracy-check.yml, the classification subset), ``dataset``
(annotation, label files, class order), ``preprocess`` (reading and preprocessing with OpenCV),
``pillow_steps`` (the Pillow reader and steps, for configs that name them), ``engine`` (the
pipelined evaluation), ``progress`` (text and JSON reporting). Importing this package imports
neither openvino, OpenCV nor Pillow; evaluating does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Union

from omz_tools.accuracy.config import AccuracyConfigError
from omz_tools.accuracy.dataset import DatasetError
from omz_tools.accuracy.engine import (
    PRECISION_ORDER, EvaluationError, EvaluationResult, MetricResult, PrecisionResult, Reporter,
)

__all__ = ["evaluate", "AccuracyError", "AccuracyConfigError", "DatasetError", "EvaluationError",
           "EvaluationResult", "PrecisionResult", "MetricResult", "ir_path", "find_model"]

# Every setup problem the accuracy check can meet; the CLI prints each as one message, exit 1.
AccuracyError = (AccuracyConfigError, DatasetError, EvaluationError)


def ir_path(model, converted_dir: Union[str, Path], precision: str) -> Path:
    return Path(converted_dir) / model.subdirectory / precision / f"{model.name}.xml"


def find_model(name, registries: Iterable = ()):
    """One registry model (a Model object passes through)."""
    if hasattr(name, "leaves"):
        return name
    from omz_tools.registry import Registry
    return Registry.from_options([Path(r) for r in registries]).load(name)


def _missing_ir(model, converted_dir: Path, precision: str, xml: Path) -> EvaluationError:
    if "INT8" in precision:
        fix = f"omz-quantizer --name {model.name} -d {converted_dir} --dataset DIR"
    else:
        fix = f"omz-converter --name {model.name} -o {converted_dir} (after omz-downloader)"
    return EvaluationError(f"no {precision} IR of {model.name} at {xml}; pass the converter's output folder with "
                           f"-d/--converted_dir, or create it: {fix}")


def _choose_precisions(model, converted_dir: Path, precisions: Optional[Iterable[str]]) -> list:
    """The precisions to evaluate, in PRECISION_ORDER; each one's IR (.xml and .bin) must be there."""
    if precisions is None:
        chosen = [p for p in PRECISION_ORDER if ir_path(model, converted_dir, p).is_file()]
        if not chosen:
            raise _missing_ir(model, converted_dir, "FP32/FP16", ir_path(model, converted_dir, "FP16"))
    else:
        requested = [precisions] if isinstance(precisions, str) else list(precisions)
        chosen = sorted(set(requested), key=lambda p: (PRECISION_ORDER + (p,)).index(p))
    for precision in chosen:
        xml = ir_path(model, converted_dir, precision)
        if not xml.is_file() or not xml.with_suffix(".bin").is_file():
            raise _missing_ir(model, converted_dir, precision, xml)
    return chosen


def evaluate(name, *, dataset: Union[str, Path], annotation: Union[str, Path],
             converted_dir: Union[str, Path] = ".", precisions: Optional[Iterable[str]] = None,
             limit: Optional[int] = None, labels: Optional[Union[str, Path]] = None, jobs: Optional[int] = None,
             tolerance: Optional[float] = None, device: str = "CPU", registries: Iterable = (),
             progress: Union[bool, str, Reporter] = False, batch: Optional[int] = None) -> EvaluationResult:
    """Evaluate a model's IR on a labelled image folder with the protocol of its accuracy-check.yml.

    ``precisions``: default every one of FP32, FP16, FP16-INT8 present under ``converted_dir``.
    ``limit``: only the first N annotated images (the verdict is then "partial"). ``labels``: a label
    file naming the annotation's class order, checked against the model's. ``tolerance``: allowed
    distance from the references as a fraction (default 0.005; 0.01 for INT8 IR). ``batch``: images
    per inference where the model's batch dimension allows it (default 4; 1: one at a time). Returns an
    :class:`EvaluationResult` (``.ok``, ``.results[precision]``); unreadable images are listed in it,
    not raised. Raises :class:`AccuracyConfigError`, :class:`DatasetError` or :class:`EvaluationError`
    for problems that stop the run, ``omz_tools.RegistryError`` for the registry.
    """
    import os

    from omz_tools.accuracy import config, dataset as ds, engine
    from omz_tools.accuracy.progress import make_reporter

    model = find_model(name, registries)
    protocol = config.for_model(model)
    converted_dir = Path(converted_dir)
    chosen = _choose_precisions(model, converted_dir, precisions)
    ds.check_folder(Path(dataset))
    if labels is not None:
        ds.check_class_order(Path(labels), protocol.class_order, model.name)
    classes = engine.ir_classes(ir_path(model, converted_dir, chosen[0]), protocol)
    if protocol.class_order is not None and protocol.class_order.count != classes:
        raise AccuracyConfigError(f"{protocol.path}: class_order.count is {protocol.class_order.count} but the IR's "
                                  f"output has {classes} classes")
    samples = ds.read_annotation(Path(annotation), Path(dataset), classes)
    total = len(samples)
    if limit is not None:
        if limit < 1:
            raise DatasetError(f"limit must be 1 or more, got {limit}")
        samples = samples[:limit]
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    reporter = progress if isinstance(progress, Reporter) else make_reporter("text" if progress is True else progress)
    result = EvaluationResult(model=model.name, dataset=protocol.dataset, total_images=total,
                              limited=len(samples) < total)
    card = model.model_card.get("accuracy") if isinstance(model.model_card, dict) else None
    try:
        for precision in chosen:
            result.results[precision] = engine.run_precision(
                model.name, precision, ir_path(model, converted_dir, precision), samples, protocol, jobs=jobs,
                reporter=reporter, device=device, tolerance=tolerance, card=card, partial=result.limited,
                batch=batch)
        reporter.summary(result)
    finally:
        reporter.close()
    return result
