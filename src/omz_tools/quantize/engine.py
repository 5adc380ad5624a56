"""The quantization pipeline: check, plan (skip when up to date), calibrate, save, verify, install."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Union

from omz_tools.errors import OmzError
from omz_tools.jsonlines import JsonLinesEmitter
from omz_tools.convert.install import check_target, install
from omz_tools.quantize import compat
from omz_tools.version import DISTRIBUTION
from omz_tools.wording import printable
from omz_tools.convert.records import stat_fields
from omz_tools.localstate import read_json, write_json

PRECISION = "FP16-INT8"  # Open Model Zoo's name for INT8 IR with FP16 floating-point weights
RECORD_NAME = ".omz_quantized.json"
RECIPE = 1  # bump when the recipe changes, to redo old output
PRESETS = ("performance", "mixed")
TARGET_DEVICES = ("ANY", "CPU", "GPU", "NPU", "CPU_SPR")


class QuantizeError(OmzError):
    """The model cannot be quantized; the message says why and what to try."""


@dataclass
class QuantizeResult:
    model: str
    xml: Path
    skipped: bool = False  # up to date
    dry_run: bool = False
    calibration_images: int = 0
    validation_images: int = 0
    fake_quantize: int = 0
    seconds: float = 0.0
    plan: list = field(default_factory=list)  # what --dry_run prints

    def as_dict(self) -> dict:
        return {"model": self.model, "xml": str(self.xml), "skipped": self.skipped, "dry_run": self.dry_run,
                "calibration_images": self.calibration_images, "validation_images": self.validation_images,
                "fake_quantize": self.fake_quantize, "seconds": round(self.seconds, 3)}


class Reporter:
    def line(self, model: str, phase: str, message: str) -> None: ...
    def end(self, result: QuantizeResult) -> None: ...


class TextReporter(Reporter):
    def line(self, model, phase, message):
        print(printable(f"{model}: {message}"), flush=True)

    def end(self, result):
        if result.dry_run:
            return
        if result.skipped:
            print(f"{result.model}: {PRECISION} is up to date: {result.xml}", flush=True)
        else:
            print(f"{result.model}: wrote {result.xml} ({result.fake_quantize} FakeQuantize, calibrated on "
                  f"{result.calibration_images} images) in {result.seconds:.1f} s", flush=True)


class JsonReporter(JsonLinesEmitter, Reporter):
    def line(self, model, phase, message):
        self.emit("quantization_phase", model=model, phase=phase, message=message)

    def end(self, result):
        self.emit("quantization_end", successful=True, **result.as_dict())


def make_reporter(progress) -> Reporter:
    if progress in (None, False):
        return Reporter()
    return JsonReporter() if progress == "json" else TextReporter()


def is_quantizable(model) -> bool:
    # PyYAML reads `quantizable: yes` as True; a quoted "yes" stays a string.
    return model.quantizable is True or str(model.quantizable).lower() == "yes"


def _version(package: str) -> Optional[str]:
    from importlib import metadata
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _up_to_date(target: Path, name: str, key: dict) -> bool:
    record = read_json(target / RECORD_NAME)
    if not record or record.get("key") != key:
        return False
    return record.get("outputs") == {ext: stat_fields(target / f"{name}.{ext}") for ext in ("xml", "bin")}


def _decode(samples: list, steps, shape, jobs: int) -> list:
    """Preprocessed inputs for ``samples``; every unreadable image is named in one QuantizeError."""
    from omz_tools.accuracy.preprocess import ImageError, prepare

    def one(sample):
        try:
            return prepare(sample.path, steps, shape), None
        except ImageError as exc:
            return None, str(exc)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="omz-decode") as pool:
        results = list(pool.map(one, samples))
    errors = [message for _, message in results if message]
    if errors:
        listed = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
        raise QuantizeError(f"{len(errors)} of {len(samples)} images cannot be used: {listed}. Nothing was written; "
                            "remove them from the dataset (or the annotation) and run again")
    return [tensor for tensor, _ in results]


@contextlib.contextmanager
def _quiet_stdout(enabled: bool):
    """NNCF prints progress bars on stdout; with JSON events stdout must stay pure JSON."""
    if not enabled:
        yield
        return
    saved = os.dup(1)
    try:
        sys.stdout.flush()
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def quantize(name, *, dataset: Union[str, Path], annotation: Optional[Union[str, Path]] = None,
             converted_dir: Union[str, Path] = ".", output_dir: Optional[Union[str, Path]] = None,
             subset_size: int = 300, preset: str = "performance", target_device: str = "CPU",
             max_drop: Optional[float] = None, validation_size: int = 1000, dry_run: bool = False,
             force: bool = False, jobs: Optional[int] = None, registries: Iterable = (),
             progress: Union[bool, str, Reporter] = False) -> QuantizeResult:
    """Quantize one model's FP32 IR to ``<output_dir>/<subdirectory>/FP16-INT8/<name>.xml``.

    ``output_dir`` defaults to ``converted_dir``. ``max_drop``: the largest top-1 drop (a fraction,
    0.01 = 1 point) allowed by NNCF's accuracy-aware path; needs ``annotation``. Raises
    :class:`QuantizeError` (and the accuracy package's errors for the data and its protocol).
    """
    from omz_tools.accuracy import find_model

    started = time.monotonic()
    compat.check()  # the NNCF made for this openvino, before any work
    model = find_model(name, registries)
    reporter = progress if isinstance(progress, Reporter) else make_reporter("text" if progress is True else progress)
    _check_arguments(model, preset=preset, target_device=target_device, subset_size=subset_size,
                     annotation=annotation, max_drop=max_drop)
    plan = _plan(model, dataset=dataset, annotation=annotation, converted_dir=Path(converted_dir),
                 output_dir=output_dir, subset_size=subset_size, preset=preset, target_device=target_device,
                 max_drop=max_drop, validation_size=validation_size)
    result = plan.result
    if dry_run:
        result.dry_run = True
        for line in result.plan:
            reporter.line(model.name, "plan", line)
        return result
    if not force and _up_to_date(plan.target, model.name, plan.key):
        result.skipped = True
        result.seconds = time.monotonic() - started
        reporter.end(result)
        return result
    if _version("nncf") is None:
        raise QuantizeError(compat.missing())
    _calibrate_and_install(model, plan, reporter, jobs=jobs, preset=preset, target_device=target_device,
                           max_drop=max_drop)
    result.seconds = time.monotonic() - started
    reporter.end(result)
    return result


def _check_arguments(model, *, preset: str, target_device: str, subset_size: int, annotation, max_drop) -> None:
    """Refuse what cannot be quantized before reading any data."""
    if model.is_composite:
        raise QuantizeError(f"{model.name} is a composite model; quantize its stages one by one")
    if not is_quantizable(model):
        raise QuantizeError(f"{model.name} is not marked 'quantizable: yes' in {model.config_dir / 'model.yml'}: "
                            "Open Model Zoo did not validate post-training INT8 for it, so omz-quantizer refuses it. "
                            "Use its FP32/FP16 IR, or quantize it with NNCF yourself and check it with "
                            "omz-accuracy-check")
    if preset not in PRESETS:
        raise QuantizeError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    if target_device not in TARGET_DEVICES:
        raise QuantizeError(f"unknown target device {target_device!r}; expected one of {', '.join(TARGET_DEVICES)}")
    if subset_size < 1:
        raise QuantizeError(f"subset_size must be 1 or more, got {subset_size}")
    if max_drop is not None and annotation is None:
        raise QuantizeError("--max_drop needs --annotation: the accuracy-aware path measures top-1 on labelled images")
    if max_drop is not None and not 0 < max_drop < 1:
        raise QuantizeError(f"max_drop is a fraction between 0 and 1 (0.01 = 1 point of top-1), got {max_drop}")


@dataclass
class _Plan:
    """What one quantization reads and writes, and the key that says whether its output is up to date."""

    protocol: object
    source: Path
    target: Path
    calibration: list
    validation: list
    key: dict
    result: QuantizeResult


def _plan(model, *, dataset, annotation, converted_dir: Path, output_dir, subset_size: int, preset: str,
          target_device: str, max_drop: Optional[float], validation_size: int) -> _Plan:
    from omz_tools.accuracy import config, dataset as ds, ir_path

    protocol = config.for_model(model)
    source = ir_path(model, converted_dir, "FP32")
    if not source.is_file() or not source.with_suffix(".bin").is_file():
        raise QuantizeError(f"no FP32 IR of {model.name} at {source}: quantization starts from it. Pass the "
                            f"converter's output folder with -d, or create it: omz-converter --name {model.name} "
                            f"-o {converted_dir} (after omz-downloader)")
    if annotation is not None:
        from omz_tools.accuracy.engine import ir_classes
        samples = ds.read_annotation(Path(annotation), Path(dataset), ir_classes(source, protocol))
    else:
        samples = ds.list_images(Path(dataset))
    calibration = ds.spread(samples, subset_size)
    validation = ds.spread(samples, validation_size) if max_drop is not None else []
    target = Path(output_dir if output_dir is not None else converted_dir) / model.subdirectory / PRECISION
    check_target(target)  # a link to a file there: refused before any work
    xml = target / f"{model.name}.xml"
    dataset_root = Path(dataset).resolve()

    def listing(items):
        return [[str(s.path.resolve().relative_to(dataset_root)) if s.path.resolve().is_relative_to(dataset_root)
                 else str(s.path), stat_fields(s.path), s.label] for s in items]
    key = {
        "recipe": RECIPE, "model": model.name, "precision": PRECISION,
        "source": {"xml": str(source.resolve()), **{ext: stat_fields(source.with_suffix(f".{ext}")) for ext in ("xml", "bin")}},
        "preprocessing": protocol.describe(), "calibration": listing(calibration), "validation": listing(validation),
        "options": {"preset": preset, "target_device": target_device, "subset_size": subset_size,
                    "max_drop": max_drop},
        "versions": {"openvino": _version("openvino"), "nncf": _version("nncf"), "omz_tools": _version(DISTRIBUTION)},
    }
    result = QuantizeResult(model=model.name, xml=xml, calibration_images=len(calibration),
                            validation_images=len(validation))
    result.plan = [
        f"source: {source}",
        f"output: {xml}",
        f"calibration: {len(calibration)} of {len(samples)} images in {dataset} ({protocol.describe()})",
        f"{_method(max_drop)}(preset={preset}, target_device={target_device}, subset_size={len(calibration)}"
        + (f", max_drop={max_drop}, validation on {len(validation)} images)" if max_drop is not None else ")"),
        f"save: openvino.save_model(..., compress_to_fp16=True), then rename into {target}",
    ]
    return _Plan(protocol, source, target, calibration, validation, key, result)


def _method(max_drop: Optional[float]) -> str:
    return "nncf.quantize_with_accuracy_control" if max_drop is not None else "nncf.quantize"


def _calibrate_and_install(model, plan: _Plan, reporter: Reporter, *, jobs: Optional[int], preset: str,
                           target_device: str, max_drop: Optional[float]) -> None:
    """Decode the images, run NNCF, then save, check and install the INT8 IR (``plan.result`` is filled in)."""
    import openvino as ov

    core = ov.Core()
    ov_model = core.read_model(str(plan.source))
    shape = list(ov_model.inputs[0].get_partial_shape().to_shape())
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    calibration, validation, steps = plan.calibration, plan.validation, plan.protocol.steps
    reporter.line(model.name, "decode", f"preprocessing {len(calibration) + len(validation)} images")
    calibration_data = _decode(calibration, steps, shape, jobs)
    validation_data = list(zip(_decode(validation, steps, shape, jobs), [s.label for s in validation]))
    reporter.line(model.name, "calibrate",
                  f"{_method(max_drop)} on {len(calibration)} images (preset {preset}, {target_device})")
    quiet = isinstance(reporter, JsonReporter)
    with _quiet_stdout(quiet):
        quantized = _run_nncf(ov_model, calibration_data, validation_data, preset=preset, target_device=target_device,
                              max_drop=max_drop)
    _save_and_install(core, quantized, model.name, plan)


def _save_and_install(core, quantized, name: str, plan: _Plan) -> None:
    """Save into a staging folder, check the IR loads and holds FakeQuantize, record it, then rename it in."""
    import openvino as ov

    target, result = plan.target, plan.result
    staged = target.parent / f".{PRECISION}.tmp-{os.getpid()}"
    shutil.rmtree(staged, ignore_errors=True)
    try:
        staged.mkdir(parents=True)
        ov.save_model(quantized, str(staged / f"{name}.xml"), compress_to_fp16=True)
        reloaded = core.read_model(str(staged / f"{name}.xml"))
        result.fake_quantize = sum(1 for op in reloaded.get_ops() if op.get_type_name() == "FakeQuantize")
        if result.fake_quantize == 0:
            raise QuantizeError(f"NNCF quantized nothing in {name} (no FakeQuantize in the result); "
                                f"nothing was written at {target}")
        core.compile_model(reloaded, "CPU")  # the IR must load, or it is not installed
        record = {"format": 1, "key": plan.key,
                  "outputs": {ext: stat_fields(staged / f"{name}.{ext}") for ext in ("xml", "bin")},
                  "fake_quantize": result.fake_quantize}
        write_json(staged / RECORD_NAME, record)
        install(staged, target, target.parent)
    except OSError as exc:
        raise QuantizeError(f"cannot write {exc.filename or staged}: {exc.strerror or exc}. Nothing was put at "
                            f"{target}; check the permissions and free space there, or choose another -o") from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _run_nncf(ov_model, calibration: list, validation: list, *, preset: str, target_device: str,
              max_drop: Optional[float]):
    import logging

    import nncf
    logging.getLogger("nncf").setLevel(logging.WARNING)
    name = ov_model.inputs[0].get_any_name()
    calibration_dataset = nncf.Dataset(calibration, lambda tensor: {name: tensor})
    options = dict(preset=nncf.QuantizationPreset(preset), target_device=nncf.TargetDevice(target_device),
                   subset_size=len(calibration))
    if max_drop is None:
        return nncf.quantize(ov_model, calibration_dataset, **options)
    import numpy as np

    def top1(compiled, items) -> float:
        output = compiled.output(0)
        hits = [int(np.argmax(compiled({name: tensor})[output])) == label for tensor, label in items]
        return float(np.mean(hits)) if hits else 0.0
    validation_dataset = nncf.Dataset(validation)
    return nncf.quantize_with_accuracy_control(ov_model, calibration_dataset, validation_dataset, top1,
                                               max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE, **options)
