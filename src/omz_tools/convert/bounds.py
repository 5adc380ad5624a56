"""The converter's bounds on what a model's files may make it read or allocate (``omz_tools.limits``).

- ``TENSOR_MAX_SIZE``: one tensor of a built or read model (an input, a layer's output, a weight),
  from the static shapes OpenVINO infers, before anything is compiled or allocated. A 480-byte
  prototxt with a convolution of ``pad: 8000`` (one output channel of 16008x16008, 0.95 GiB) would
  otherwise make the IR check's inference peak at 4 GB, ``pad: 16000`` at 16 GB. The default, 512 MiB,
  is above Open Model Zoo's largest tensors (ssd512's 67 MB, mtcnn-p at 720x1280 37 MB, VGG-16's fc6
  weights 411 MB) and 64 f32 channels at full HD (1x64x1080x1920, 506 MiB).
- ``MODEL_FILE_MAX_SIZE``: a file the converter (or Model Optimizer, for it) reads; ``PROTOTXT_MAX_SIZE``:
  a Caffe network description, parsed whole as text (Open Model Zoo's largest prototxts are ~100 KB,
  its largest model files under 1 GB: VGG-16's caffemodel is 528 MB).
  Only regular files are read: a FIFO or device named by model.yml is refused without opening it.
- ``PROTOTXT_MAX_DEPTH``: the nesting of ``{ }``/``< >``/``[ ]`` in a prototxt (Caffe's messages nest 4
  deep; protobuf's C++ text parser stops at 100); deeper text would exhaust Python's recursion in
  protobuf's text parser.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Optional, Tuple

from omz_tools import regularfile
from omz_tools.errors import OmzError
from omz_tools.limits import Limit

TENSOR_MAX_SIZE = Limit("the size of one tensor of a converted model", "OMZ_TENSOR_MAX_SIZE", 512 << 20)
MODEL_FILE_MAX_SIZE = Limit("the size of a model file the converter reads", "OMZ_MODEL_FILE_MAX_SIZE", 8 << 30)
PROTOTXT_MAX_SIZE = Limit("the size of a Caffe .prototxt", "OMZ_PROTOTXT_MAX_SIZE", 64 << 20)
PROTOTXT_MAX_DEPTH = Limit("the nesting depth of a Caffe .prototxt", "OMZ_PROTOTXT_MAX_DEPTH", 100, kind="count")


class BoundError(OmzError):
    """A model file or a tensor of a model is beyond one of the converter's limits."""


def _bound_error(exc: regularfile.FileReadError, what: str, limit: Limit) -> BoundError:
    """The converter's sentence for what omz_tools.regularfile refused."""
    from omz_tools.wording import human_size
    if exc.kind is not None:
        return BoundError(f"{what} is {exc.kind}; the converter reads only regular files (check the paths in "
                          "the model's model_optimizer_args)")
    if exc.too_large:
        bound = limit.value()
        found = "more" if exc.size is None else f"{human_size(exc.size)} ({exc.size:,} bytes), more"
        return BoundError(f"{what} has {found} than {limit.what} allows ({human_size(bound)}). {limit.hint()}")
    return BoundError(f"cannot read {what}: {exc.reason or exc.problem}")


def check_file(path: os.PathLike, what: str, limit: Limit = MODEL_FILE_MAX_SIZE, *,
               folders: bool = False) -> None:
    """BoundError unless ``path`` (links followed) is a regular file within ``limit`` (or, with
    ``folders``, a folder, or absent: for Model Optimizer, which says so itself). Never opens it.
    ``what`` names the file in messages, its path included ("the Caffe weights file /x/y")."""
    try:
        regularfile.check(path, limit.value())
    except regularfile.FileReadError as exc:
        if folders and (exc.kind == "a folder" or exc.errno is not None):
            return
        raise _bound_error(exc, what, limit) from None


def open_file(path: os.PathLike, what: str, limit: Limit = MODEL_FILE_MAX_SIZE) -> BinaryIO:
    """``path`` opened for reading if it is a regular file within ``limit``, else BoundError (see
    omz_tools.regularfile: a FIFO never blocks, a device is never read)."""
    try:
        return regularfile.open_regular(path, limit.value())
    except regularfile.FileReadError as exc:
        raise _bound_error(exc, what, limit) from None


def read_file(path: os.PathLike, what: str, limit: Limit) -> bytes:
    """The bytes of a regular file within ``limit`` (at most limit + 1 bytes are read, should it grow)."""
    try:
        return regularfile.read(path, limit.value())
    except regularfile.FileReadError as exc:
        raise _bound_error(exc, what, limit) from None


def _static_size(shape, element_type) -> Optional[Tuple[list, int]]:
    """(dims, bytes) of a static PartialShape, None if it is dynamic."""
    if not shape.is_static:
        return None
    dims = [int(d) for d in shape.to_shape()]
    count = 1
    for d in dims:
        count *= d
    return dims, count * max(1, element_type.size)


def _sentence(label: str, dims: list, element_type, size: int, bound: int, limit: Limit) -> str:
    from omz_tools.wording import human_size
    return (f"{label} gives a tensor of shape {dims} ({element_type.get_type_name()}), {human_size(size)}, more "
            f"than {limit.what} allows ({human_size(bound)}). {limit.hint()}")


def oversized_output(value, label: str, limit: Limit = TENSOR_MAX_SIZE) -> Optional[str]:
    """None if the ``openvino.Output`` ``value`` is dynamic or within ``limit``, else one sentence."""
    bound = limit.value()
    found = _static_size(value.get_partial_shape(), value.get_element_type())
    if found is None or found[1] <= bound:
        return None
    return _sentence(label, found[0], value.get_element_type(), found[1], bound, limit)


def oversized_tensor(ov_model, limit: Limit = TENSOR_MAX_SIZE) -> Optional[str]:
    """None if every static tensor of ``ov_model`` (inputs, every layer's outputs, weights) is within
    ``limit``, else one sentence naming the first layer (friendly name and type) whose output is
    bigger, its shape and size, and the limit. Dynamic shapes are not bounded here."""
    bound = limit.value()
    for op in ov_model.get_ordered_ops():
        for index in range(op.get_output_size()):
            found = _static_size(op.get_output_partial_shape(index), op.get_output_element_type(index))
            if found is not None and found[1] > bound:
                port = f" (output {index})" if op.get_output_size() > 1 else ""
                return _sentence(f"layer \"{op.get_friendly_name()}\" ({op.get_type_name()}){port}", found[0],
                                 op.get_output_element_type(index), found[1], bound, limit)
    return None


def prototxt_depth(text: str) -> Tuple[int, int]:
    """(deepest nesting of { } < > [ ], line where it is first reached), outside strings and comments."""
    import re
    token = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"?|'(?:[^'\\\n]|\\.)*'?|#[^\n]*|[{}<>\[\]]|\n")
    depth = deepest = 0
    line = where = 1
    for match in token.finditer(text):
        char = match.group()
        if char == "\n":
            line += 1
        elif char in "{<[":
            depth += 1
            if depth > deepest:
                deepest, where = depth, line
        elif char in "}>]":
            depth = max(0, depth - 1)
    return deepest, where


def check_prototxt_depth(text: str, path: Path) -> None:
    bound = PROTOTXT_MAX_DEPTH.value()
    deepest, line = prototxt_depth(text)
    if deepest > bound:
        raise BoundError(f"the Caffe network description {path} nests blocks ({{ }}, < > or [ ]) {deepest:,} levels "
                         f"deep (line {line}), more than {PROTOTXT_MAX_DEPTH.what} allows ({bound:,}); Caffe's own "
                         f"messages nest a few levels, so this is no network description. {PROTOTXT_MAX_DEPTH.hint()}")
