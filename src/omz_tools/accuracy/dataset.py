"""The user's data: an image folder, an annotation (``<path relative to DIR> <class index>`` per line,
the format of ImageNet's ``val15.txt``/``val.txt``) and optionally a label file naming the class
order the indices refer to (one ``<class id> [description]`` per line, e.g. ``n02119789 kit fox``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from omz_tools import regularfile
from omz_tools.accuracy.config import ClassOrder
from omz_tools.errors import OmzError
from omz_tools.limits import Limit
from omz_tools.wording import human_size

# ImageNet's val.txt is 1.5 MB for 50,000 images; this is far above any real annotation.
ANNOTATION_MAX_BYTES = Limit("the size of an annotation or label file", "OMZ_ANNOTATION_MAX_BYTES", 64 << 20)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jpe")


class DatasetError(OmzError):
    """The dataset, the annotation or the label file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: Optional[int]  # None for calibration images without an annotation
    line: int = 0


def _cut(text: str, limit: int = 80) -> str:
    """repr of the first ``limit`` characters (a line may be megabytes long)."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def _read_text(path: Path, what: str) -> bytes:
    """The bytes of an annotation or label file: a regular file (a FIFO never blocks) of at most
    OMZ_ANNOTATION_MAX_BYTES."""
    limit = ANNOTATION_MAX_BYTES
    max_bytes = limit.value()
    try:
        return regularfile.read(path, max_bytes, f"{human_size(max_bytes)} ({limit.env_var})")
    except regularfile.FileReadError as exc:
        if regularfile.is_missing(exc) and what == "annotation":
            raise DatasetError(f"annotation {path} does not exist") from None
        hint = f" {limit.hint()}" if exc.too_large else ""
        raise DatasetError(f"cannot read {what} {path}: {exc.problem}.{hint}") from None


def check_folder(dataset: Path) -> Path:
    dataset = Path(dataset)
    if not dataset.exists():
        raise DatasetError(f"dataset folder {dataset} does not exist; pass the folder that holds the images "
                           "(the annotation's paths are relative to it) with --dataset")
    if not dataset.is_dir():
        raise DatasetError(f"dataset {dataset} is not a folder; pass the folder that holds the images with --dataset")
    return dataset


def read_annotation(annotation: Path, dataset: Path, num_classes: Optional[int] = None) -> list:
    """Samples of ``annotation``; every problem is a :class:`DatasetError` naming the file and line."""
    dataset = check_folder(dataset)
    annotation = Path(annotation)
    try:
        text = _read_text(annotation, "annotation").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"annotation {annotation} is not UTF-8 text (byte {exc.start}); expected lines of "
                           "'<image path relative to the dataset folder> <class index>'") from None
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.rsplit(None, 1)
        where = f"annotation {annotation} line {number}"
        if len(parts) != 2:
            raise DatasetError(f"{where}: expected '<image path> <class index>', found {_cut(stripped)}")
        name, index = parts
        try:
            label = int(index)
        except ValueError:
            raise DatasetError(f"{where}: expected an integer class index after the image path, found "
                               f"{_cut(index, 40)} in {_cut(stripped)}") from None
        if label < 0 or (num_classes is not None and label >= num_classes):
            bound = f"0-{num_classes - 1}, the model has {num_classes} classes" if num_classes else "0 or more"
            raise DatasetError(f"{where}: class index {label} is out of range (expected {bound})")
        if Path(name).is_absolute() or ".." in Path(name).parts or "\0" in name:
            raise DatasetError(f"{where}: expected a path relative to the dataset folder, found {_cut(name)}")
        samples.append(Sample(dataset / name, label, number))
    if not samples:
        raise DatasetError(f"annotation {annotation} lists no images; expected lines of "
                           "'<image path relative to the dataset folder> <class index>'")
    return samples


def list_images(dataset: Path) -> list:
    """Image files under ``dataset`` (by suffix), sorted: the calibration pool without an annotation."""
    dataset = check_folder(dataset)
    found = sorted(p for p in dataset.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise DatasetError(f"dataset folder {dataset} holds no images ({', '.join(IMAGE_SUFFIXES[:4])} ...)")
    return [Sample(p, None) for p in found]


def spread(samples: list, count: int) -> list:
    """``count`` samples evenly spaced over ``samples`` (all of them when there are fewer)."""
    if count >= len(samples):
        return list(samples)
    step = len(samples) / count
    return [samples[int(i * step)] for i in range(count)]


def class_ids(path: Path) -> list:
    """The class ids (first token of each non-empty line) of a label file."""
    try:
        lines = _read_text(Path(path), "label file").decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise DatasetError(f"label file {path} is not UTF-8 text") from None
    return [line.split()[0] for line in lines if line.strip()]


def order_digest(ids: list) -> str:
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def check_class_order(labels: Path, order: Optional[ClassOrder], model: str) -> None:
    """Refuse a label file whose class order is not the model's (a silent ~0.1 % accuracy otherwise)."""
    ids = class_ids(labels)
    if order is None:
        raise DatasetError(f"--labels {labels}: the accuracy-check.yml of {model} declares no class_order to "
                           "check it against; drop --labels or add class_order to that file")
    if len(ids) == order.count and order_digest(ids) == order.sha256:
        return
    first = ids[0] if ids else "(empty)"
    raise DatasetError(
        f"--labels {labels}: its class order is not {model}'s: the model's output index i is class i of "
        f"{order.name} ({order.count} classes, index 0 is {order.first}), the label file has {len(ids)} classes "
        f"with index 0 {first} (sha256 of the ids {order_digest(ids)[:12]}..., expected {order.sha256[:12]}...). "
        f"An annotation in another order gives near-chance accuracy: use one whose indices follow {order.name}")
