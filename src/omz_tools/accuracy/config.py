"""Open Model Zoo's ``accuracy-check.yml``, the classification subset.

The file sits beside ``model.yml``. What is read (everything else is refused by name, so a protocol
is never silently half-applied):

- ``models[].launchers[]``: the entry whose launcher is ``dlsdk`` or ``openvino`` (the IR); entries
  for the original framework (``caffe`` ...) are ignored. Launcher keys: ``framework``, ``adapter``
  (``classification``, or ``{type: classification, output_blob: NAME}``), ``device``, ``tags``.
- ``models[].datasets[]`` (exactly one): ``name``; ``reader``: ``opencv_imread`` (the default) or
  ``pillow_imread`` (also as ``{type: ..., to_rgb: true}``); ``preprocessing``: ``resize`` (``size`` or
  ``dst_width``/``dst_height``, ``aspect_ratio_scale`` width|height|greater|fit_to_window,
  ``interpolation`` NEAREST|LINEAR|CUBIC|AREA (BILINEAR, BICUBIC: aliases), ``use_pillow`` with
  Pillow's filters), ``crop`` (``size`` or ``dst_width``/``dst_height``, ``central_fraction``,
  ``use_pillow``), ``normalization`` (``mean``, ``std``: numbers), ``bgr_to_rgb``, ``rgb_to_bgr``;
  ``metrics``: ``type: accuracy`` with ``top_k``, ``name``, ``reference`` (a fraction, 0.78252) and
  ``abs_threshold`` (the tolerance, a fraction).
- ``class_order`` (ours, on the dataset): ``name``, ``count``, ``first`` (the class at index 0)
  and ``sha256`` of the class ids (WordNet ids) joined by newlines, so a label file in another
  order is caught instead of silently giving ~0.1 % accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omz_tools import yamlbounds
from omz_tools.errors import OmzError
from omz_tools.limits import Limit
from omz_tools.version import pip_install
from omz_tools.wording import brief

CONFIG_NAME = "accuracy-check.yml"
IR_LAUNCHERS = ("dlsdk", "openvino")
# The accuracy checker's names for cv2.INTER_* (its OpenCV resizer also takes BILINEAR and BICUBIC).
INTERPOLATIONS = ("NEAREST", "LINEAR", "CUBIC", "AREA")
OPENCV_ALIASES = {"BILINEAR": "LINEAR", "BICUBIC": "CUBIC"}
# Its Pillow resizer's names -> the Image.Resampling filter it passes (NONE is Dither.NONE, i.e. 0,
# i.e. NEAREST; LINEAR, CUBIC and ANTIALIAS are Pillow's old aliases).
PILLOW_INTERPOLATIONS = {"NEAREST": "NEAREST", "NONE": "NEAREST", "BILINEAR": "BILINEAR", "LINEAR": "BILINEAR",
                         "BICUBIC": "BICUBIC", "CUBIC": "BICUBIC", "BOX": "BOX", "LANCZOS": "LANCZOS",
                         "ANTIALIAS": "LANCZOS", "HAMMING": "HAMMING"}
IMAGE_READERS = ("opencv_imread", "pillow_imread")
ASPECT_RATIO_SCALES = ("width", "height", "greater", "fit_to_window")
MAX_TOP_K = 1000  # the scores kept per image: a top_k of 10**9 would allocate them for every image
# Open Model Zoo's classification protocols resize to at most 600 or so; this is far above.
PREPROCESS_MAX_SIZE = Limit("the bound on a resize or crop size", "OMZ_PREPROCESS_MAX_SIZE", 8192, kind="count")


class AccuracyConfigError(OmzError):
    """An accuracy-check.yml we cannot use; the message names the file, the key and what to do."""


@dataclass(frozen=True)
class Step:
    """One preprocessing step: ``kind`` is read (Pillow's reader, always first), resize, crop,
    normalization, bgr_to_rgb or rgb_to_bgr; ``params["library"] == "pillow"`` on a resize or crop
    means Open Model Zoo's ``use_pillow``."""

    kind: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    name: str
    top_k: int
    reference: Optional[float]  # a fraction (0.78252), as Open Model Zoo writes it
    abs_threshold: Optional[float]


@dataclass(frozen=True)
class ClassOrder:
    name: str
    count: int
    first: str
    sha256: str


@dataclass(frozen=True)
class Protocol:
    """How to evaluate one model: preprocessing, adapter output, metrics, class order."""

    path: Path
    dataset: str
    steps: tuple
    metrics: tuple
    output_blob: Optional[str] = None
    class_order: Optional[ClassOrder] = None

    def describe(self) -> str:
        return ", ".join(f"{s.kind}({', '.join(f'{k}={v}' for k, v in s.params.items())})" for s in self.steps)


def _show(value: Any) -> str:
    text = brief(value, 60)  # built piece by piece: a value may be huge
    return text if len(text) <= 60 else text[:57] + "..."


class _Reader:
    def __init__(self, path: Path):
        self.path = path

    def error(self, key: str, problem: str) -> AccuracyConfigError:
        return AccuracyConfigError(f"{self.path}: {key}: {problem}")

    def unsupported(self, key: str, what: str) -> AccuracyConfigError:
        return self.error(key, f"{what} is not supported by omz-accuracy-check (it reads the classification "
                               "subset of Open Model Zoo's format: the opencv_imread and pillow_imread readers, "
                               "resize, crop, normalization, bgr_to_rgb, rgb_to_bgr, the classification adapter "
                               "and top_k accuracy metrics)")

    def mapping(self, key: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, found {_show(value)}")
        return value

    def listing(self, key: str, value: Any) -> list:
        if not isinstance(value, list) or not value:
            raise self.error(key, f"expected a non-empty list, found {_show(value)}")
        return value

    def positive_int(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.error(key, f"expected a positive integer, found {_show(value)}")
        return value

    def fraction(self, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise self.error(key, f"expected a fraction between 0 and 1 (0.78252 for 78.252 %), found {_show(value)}")
        return float(value)

    def numbers(self, key: str, value: Any) -> tuple:
        """Open Model Zoo writes ``mean: 104, 117, 123`` (a string) or a list, or one number."""
        items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]
        try:
            numbers = tuple(float(item) for item in items)
        except (TypeError, ValueError):
            if isinstance(value, str) and value.strip().isidentifier():
                raise self.unsupported(key, f"the named preset {_show(value)}") from None
            raise self.error(key, f"expected 1 or 3 numbers (e.g. 104, 117, 123), found {_show(value)}") from None
        if len(numbers) not in (1, 3) or any(isinstance(item, bool) for item in items):
            raise self.error(key, f"expected 1 or 3 numbers (e.g. 104, 117, 123), found {_show(value)}")
        return numbers

    def only(self, key: str, mapping: dict, allowed: tuple) -> None:
        for name in mapping:
            if name not in allowed:
                raise self.unsupported(f"{key}.{name}", f"the key {_show(name)}")


def _side(reader: _Reader, key: str, value: Any) -> int:
    """A resize or crop size: a positive integer of at most PREPROCESS_MAX_SIZE (60000 would make
    OpenCV allocate 10.8 GB per image, 3000000000 overflows its int)."""
    side = reader.positive_int(key, value)
    bound = PREPROCESS_MAX_SIZE.value()
    if side > bound:
        raise reader.error(key, f"expected at most {bound:,} pixels ({PREPROCESS_MAX_SIZE.what}), found {side:,}. "
                                f"{PREPROCESS_MAX_SIZE.hint()}")
    return side


def _size(reader: _Reader, key: str, step: dict) -> tuple:
    """(width, height) from ``size`` or ``dst_width``/``dst_height``."""
    if "size" in step:
        if "dst_width" in step or "dst_height" in step:
            raise reader.error(key, "expected either size or dst_width/dst_height, found both")
        size = _side(reader, f"{key}.size", step["size"])
        return size, size
    if "dst_width" not in step or "dst_height" not in step:
        raise reader.error(key, "expected size, or both dst_width and dst_height")
    return (_side(reader, f"{key}.dst_width", step["dst_width"]),
            _side(reader, f"{key}.dst_height", step["dst_height"]))


def _use_pillow(reader: _Reader, key: str, step: dict) -> bool:
    value = step.get("use_pillow", False)
    if not isinstance(value, bool):
        raise reader.error(f"{key}.use_pillow", f"expected true or false, found {_show(value)}")
    return value


def _resize_step(reader: _Reader, key: str, step: dict) -> Step:
    reader.only(key, step, ("type", "size", "dst_width", "dst_height", "aspect_ratio_scale", "interpolation",
                            "use_pillow"))
    pillow = _use_pillow(reader, key, step)
    width, height = _size(reader, key, step)
    scale = step.get("aspect_ratio_scale")
    if scale is not None and scale not in ASPECT_RATIO_SCALES:
        raise reader.unsupported(f"{key}.aspect_ratio_scale", f"aspect_ratio_scale {_show(scale)}")
    # Without the key the accuracy checker takes its resizer's default: LINEAR, BILINEAR for Pillow.
    name = str(step.get("interpolation", "BILINEAR" if pillow else "LINEAR")).upper()
    if pillow:
        if name not in PILLOW_INTERPOLATIONS:
            raise reader.unsupported(f"{key}.interpolation", f"interpolation {_show(step.get('interpolation'))} with "
                                     f"use_pillow (Pillow's are {', '.join(PILLOW_INTERPOLATIONS)})")
        return Step("resize", {"width": width, "height": height, "aspect_ratio_scale": scale,
                               "interpolation": PILLOW_INTERPOLATIONS[name], "library": "pillow"})
    name = OPENCV_ALIASES.get(name, name)
    if name not in INTERPOLATIONS:
        raise reader.unsupported(f"{key}.interpolation", f"interpolation {_show(step.get('interpolation'))}")
    return Step("resize", {"width": width, "height": height, "aspect_ratio_scale": scale, "interpolation": name})


def _crop_step(reader: _Reader, key: str, step: dict) -> Step:
    reader.only(key, step, ("type", "size", "dst_width", "dst_height", "central_fraction", "use_pillow"))
    library = {"library": "pillow"} if _use_pillow(reader, key, step) else {}
    if "central_fraction" in step:
        if any(k in step for k in ("size", "dst_width", "dst_height")):
            raise reader.error(key, "expected either central_fraction or a size, found both")
        fraction = reader.fraction(f"{key}.central_fraction", step["central_fraction"])
        if fraction == 0:
            raise reader.error(f"{key}.central_fraction", "expected a fraction above 0, found 0")
        return Step("crop", {"central_fraction": fraction, **library})
    width, height = _size(reader, key, step)
    return Step("crop", {"width": width, "height": height, **library})


def _step(reader: _Reader, key: str, raw: Any) -> Step:
    step = reader.mapping(key, raw)
    kind = step.get("type")
    if kind == "resize":
        return _resize_step(reader, key, step)
    if kind == "crop":
        return _crop_step(reader, key, step)
    if kind == "normalization":
        reader.only(key, step, ("type", "mean", "std"))
        if "mean" not in step and "std" not in step:
            raise reader.error(key, "expected mean and/or std, found neither")
        mean = reader.numbers(f"{key}.mean", step["mean"]) if "mean" in step else None
        std = reader.numbers(f"{key}.std", step["std"]) if "std" in step else None
        if std is not None and any(value == 0 for value in std):
            raise reader.error(f"{key}.std", f"expected non-zero values, found {_show(step['std'])}")
        return Step("normalization", {"mean": mean, "std": std})
    if kind in ("bgr_to_rgb", "rgb_to_bgr"):
        reader.only(key, step, ("type",))
        return Step(kind)
    if kind is None:
        raise reader.error(f"{key}.type", "expected a preprocessing type, found no such key")
    raise reader.unsupported(f"{key}.type", f"the preprocessing step {_show(kind)}")


def _metric(reader: _Reader, key: str, raw: Any) -> Metric:
    metric = reader.mapping(key, raw)
    reader.only(key, metric, ("type", "name", "top_k", "reference", "abs_threshold", "presenter"))
    if metric.get("type") != "accuracy":
        raise reader.unsupported(f"{key}.type", f"the metric {_show(metric.get('type'))}")
    top_k = reader.positive_int(f"{key}.top_k", metric.get("top_k", 1))
    if top_k > MAX_TOP_K:
        raise reader.error(f"{key}.top_k", f"expected at most {MAX_TOP_K:,} (top-1 and top-5 are the usual), "
                                           f"found {_show(top_k)}")
    reference = reader.fraction(f"{key}.reference", metric["reference"]) if "reference" in metric else None
    threshold = (reader.fraction(f"{key}.abs_threshold", metric["abs_threshold"])
                 if "abs_threshold" in metric else None)
    return Metric(name=str(metric.get("name", f"accuracy@top{top_k}")), top_k=top_k, reference=reference,
                  abs_threshold=threshold)


def _class_order(reader: _Reader, key: str, raw: Any) -> ClassOrder:
    order = reader.mapping(key, raw)
    reader.only(key, order, ("name", "count", "first", "sha256"))
    digest = order.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise reader.error(f"{key}.sha256", f"expected 64 lower-case hex digits, found {_show(digest)}")
    return ClassOrder(name=str(order.get("name", "")), count=reader.positive_int(f"{key}.count", order.get("count")),
                      first=str(order.get("first", "")), sha256=digest)


def _image_reader(reader: _Reader, key: str, raw: Any) -> str:
    """``opencv_imread`` or ``pillow_imread``, written alone or as ``{type: ..., to_rgb: true}``."""
    if isinstance(raw, dict):
        reader.only(key, raw, ("type", "to_rgb") if raw.get("type") == "pillow_imread" else ("type",))
        if raw.get("to_rgb", True) is not True:
            raise reader.unsupported(f"{key}.to_rgb", f"to_rgb: {_show(raw.get('to_rgb'))} (Pillow's image mode "
                                                      "as the file has it)")
        name = raw.get("type", "opencv_imread")
    else:
        name = raw
    if name not in IMAGE_READERS:
        raise reader.unsupported(key, f"the image reader {_show(raw)}")
    return name


def _check_pillow_steps(reader: _Reader, key: str, steps: tuple, image_reader: str) -> None:
    """Pillow takes 8-bit pixels: refuse a Pillow step after one that makes them float32 (the accuracy
    checker's OpenCV resize and normalization do; there Image.fromarray fails), and say early when
    Pillow, which the file asks for, is missing."""
    floated = None
    for n, step in enumerate(steps):
        if step.params.get("library") == "pillow" and floated is not None:
            raise reader.unsupported(f"{key}[{n}].use_pillow", f"a Pillow {step.kind} after {key}[{floated}] (an "
                                     f"OpenCV resize or a normalization, whose float32 pixels Pillow cannot take; "
                                     "Open Model Zoo's accuracy checker fails there too)")
        if step.kind == "normalization" or (step.kind == "resize" and "library" not in step.params):
            floated = n if floated is None else floated
    if image_reader == "pillow_imread" or any(s.params.get("library") == "pillow" for s in steps):
        try:
            import PIL  # noqa: F401  (only when a file asks for Pillow)
        except ImportError as exc:
            raise reader.error(key, f"this file asks for Pillow (pillow_imread or use_pillow), which is not "
                                    f"installed ({exc}); install it with: {pip_install('accuracy')} "
                                    "(or pillow)") from None


def parse(data: Any, path: Path) -> Protocol:
    """Validate a loaded accuracy-check.yml and return the IR's protocol."""
    reader = _Reader(path)
    top = reader.mapping("(top level)", data)
    if "models" not in top and "evaluations" in top:
        raise reader.unsupported("evaluations", "a composite model's evaluation (Open Model Zoo runs it with a "
                                                "custom evaluator module written for that model)")
    models = reader.listing("models", top.get("models"))
    for i, raw_model in enumerate(models):
        entry = reader.mapping(f"models[{i}]", raw_model)
        launchers = reader.listing(f"models[{i}].launchers", entry.get("launchers"))
        for j, raw_launcher in enumerate(launchers):
            launcher = reader.mapping(f"models[{i}].launchers[{j}]", raw_launcher)
            if launcher.get("framework") in IR_LAUNCHERS:
                return _ir_protocol(reader, f"models[{i}]", entry, f"models[{i}].launchers[{j}]", launcher)
    raise reader.error("models", f"expected an entry with a launcher whose framework is one of "
                                 f"{', '.join(IR_LAUNCHERS)} (the OpenVINO IR), found none")


def _ir_protocol(reader: _Reader, key: str, entry: dict, launcher_key: str, launcher: dict) -> Protocol:
    reader.only(launcher_key, launcher, ("framework", "adapter", "device", "tags", "batch", "model", "weights"))
    adapter = launcher.get("adapter")
    output_blob = None
    if isinstance(adapter, dict):
        reader.only(f"{launcher_key}.adapter", adapter, ("type", "output_blob"))
        output_blob = adapter.get("output_blob")
        if output_blob is not None and (not isinstance(output_blob, str) or not output_blob):
            raise reader.error(f"{launcher_key}.adapter.output_blob", f"expected the name of an output of the IR, "
                                                                      f"found {_show(output_blob)}")
        adapter = adapter.get("type")
    if adapter != "classification":
        raise reader.unsupported(f"{launcher_key}.adapter", f"the adapter {_show(adapter)}")
    datasets = reader.listing(f"{key}.datasets", entry.get("datasets"))
    if len(datasets) != 1:
        raise reader.unsupported(f"{key}.datasets", f"evaluating on {len(datasets)} datasets at once")
    dataset = reader.mapping(f"{key}.datasets[0]", datasets[0])
    dkey = f"{key}.datasets[0]"
    reader.only(dkey, dataset, ("name", "preprocessing", "metrics", "class_order", "reader"))
    image_reader = _image_reader(reader, f"{dkey}.reader", dataset.get("reader", "opencv_imread"))
    name = dataset.get("name")
    if not isinstance(name, str) or not name:
        raise reader.error(f"{dkey}.name", f"expected the dataset's name, found {_show(name)}")
    for section in ("preprocessing", "metrics"):
        if section not in dataset:
            raise reader.error(f"{dkey}.{section}", f"expected this key, found none: Open Model Zoo took a missing "
                                                    f"{section} from its global dataset_definitions.yml, which "
                                                    "omz_tools does not read; write it here")
    steps = tuple(_step(reader, f"{dkey}.preprocessing[{n}]", raw)
                  for n, raw in enumerate(reader.listing(f"{dkey}.preprocessing", dataset["preprocessing"])))
    _check_pillow_steps(reader, f"{dkey}.preprocessing", steps, image_reader)
    if image_reader == "pillow_imread":
        steps = (Step("read", {"library": "pillow", "mode": "RGB"}),) + steps
    metrics = tuple(_metric(reader, f"{dkey}.metrics[{n}]", raw)
                    for n, raw in enumerate(reader.listing(f"{dkey}.metrics", dataset["metrics"])))
    class_order = _class_order(reader, f"{dkey}.class_order", dataset["class_order"]) if "class_order" in dataset \
        else None
    return Protocol(path=reader.path, dataset=name, steps=steps, metrics=metrics, output_blob=output_blob,
                    class_order=class_order)


def load(path: Path) -> Protocol:
    """Read and validate ``path`` (within omz_tools.yamlbounds' limits, as every YAML file the tools
    read: a regular file of at most 4 MiB, bounded aliases, nesting and integers); raises
    :class:`AccuracyConfigError`."""
    try:
        data = yamlbounds.load(Path(path))
    except yamlbounds.YamlBoundsError as exc:
        raise AccuracyConfigError(f"{path}: {exc}") from None
    return parse(data, Path(path))


def for_model(model) -> Protocol:
    """The protocol of a registry model (its accuracy-check.yml beside model.yml)."""
    path = Path(model.config_dir) / CONFIG_NAME
    if not path.is_file():
        raise AccuracyConfigError(f"model {model.name} has no {CONFIG_NAME} in {model.config_dir}: its registry "
                                  "entry says nothing about how to evaluate it; write one (see the README's "
                                  "omz-accuracy-check section)")
    return load(path)
