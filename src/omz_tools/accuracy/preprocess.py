"""Image reading and preprocessing as Open Model Zoo's accuracy checker does it (OpenCV, BGR uint8).

``prepare(path, steps)`` returns an NCHW float32 array for the IR (batch of one). The arithmetic
follows the accuracy checker: ``cv2.imread`` (BGR, 8 bits), ``cv2.resize`` with the requested
interpolation, a center crop with ``(size - crop) // 2`` offsets (a too small image is first
enlarged so the crop fits), ``(x - mean) / std`` in float32, and ``cv2.cvtColor`` for bgr_to_rgb and
rgb_to_bgr. A leading ``read`` step and the steps marked ``library: pillow`` are Pillow's
(accuracy.pillow_steps: ``pillow_imread``, ``use_pillow``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from omz_tools.accuracy import pillow_steps
from omz_tools.accuracy.config import Step
from omz_tools.accuracy.imagefile import IMAGE_MAX_PIXELS, ImageError, header_size, read_file  # noqa: F401
from omz_tools.version import pip_install


_QUIETED = False


def _cv2():
    if "cv2" not in sys.modules:
        # OpenCV's own pixel bound (read once, at its first decode) made ours, for the formats whose
        # header Pillow cannot read; a value the user set is kept.
        os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(IMAGE_MAX_PIXELS.value()))
    try:
        import cv2
    except ImportError as exc:
        raise ImageError(f"OpenCV is not installed ({exc}); install it with: {pip_install('accuracy')} "
                         "(or opencv-python-headless)") from None
    global _QUIETED
    if not _QUIETED:
        # A damaged file is reported once, by us, with its path; OpenCV's own WARN lines on stderr
        # (e.g. "read_chunk chunk data is too large") would only add noise without naming it.
        if hasattr(cv2, "setLogLevel"):
            cv2.setLogLevel(2)  # LOG_LEVEL_ERROR
        _QUIETED = True
    return cv2


def read_image(path: Path) -> np.ndarray:
    """BGR uint8 HxWx3, as ``cv2.imread(path, IMREAD_COLOR)``; raises :class:`ImageError`."""
    cv2 = _cv2()
    data = read_file(path)
    if data:
        header_size(path, data)  # refuses a header declaring more pixels than the bound, before decoding
    try:
        # imdecode from bytes, not imread: imread says nothing about why it failed.
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error as exc:
        # OpenCV's own checks (e.g. its pixel bound, OPENCV_IO_MAX_IMAGE_PIXELS) raise instead of returning None.
        raise ImageError(f"{path}: not an image OpenCV can decode ({len(data)} bytes: OpenCV refused it: "
                         f"{_cv2_reason(exc)})") from None
    if image is None:
        kind = "an empty file" if not data else f"{len(data)} bytes starting {data[:8]!r}"
        raise ImageError(f"{path}: not an image OpenCV can decode ({kind})")
    return image


def _cv2_reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text.split(" error: ", 1)[-1][:200]  # without the build path of the source file


def _resize_to(step: Step, width: int, height: int) -> tuple:
    dst_w, dst_h = step.params["width"], step.params["height"]
    scale = step.params["aspect_ratio_scale"]
    if scale == "width":
        return int(dst_w * width / height), dst_h
    if scale == "height":
        return dst_w, int(dst_h * height / width)
    if scale == "greater":
        return (dst_w, int(dst_h * height / width)) if height > width else (int(dst_w * width / height), dst_h)
    if scale == "fit_to_window":
        ratio = min(dst_h / height, dst_w / width)
        return int(ratio * width), int(ratio * height)
    return dst_w, dst_h


def _pillow_crop(image: np.ndarray, step: Step) -> np.ndarray:
    if "central_fraction" in step.params:
        height, width = image.shape[:2]
        fraction = step.params["central_fraction"]
        return pillow_steps.crop(image, int(width * fraction), int(height * fraction))
    return pillow_steps.crop(image, step.params["width"], step.params["height"])


def _checked(size: tuple, step: Step) -> tuple:
    """A step's output size, refused when empty or over OMZ_IMAGE_MAX_PIXELS: an image far from the
    protocol's aspect ratio (1x20000 with aspect_ratio_scale) would otherwise be resized to gigabytes."""
    width, height = int(size[0]), int(size[1])
    bound = IMAGE_MAX_PIXELS.value()
    if width < 1 or height < 1 or width * height > bound:
        raise ImageError(f"not preprocessed: the {step.kind} step would make it {width}x{height} pixels (expected "
                         f"1x1 up to {bound:,} pixels in all, {IMAGE_MAX_PIXELS.env_var}): its shape is too far "
                         "from the protocol's")
    return width, height


def apply(image: np.ndarray, steps: Sequence[Step]) -> np.ndarray:
    """Apply the steps to an HxWxC image; uint8 until a normalization makes it float32."""
    cv2 = _cv2()
    for step in steps:
        pillow = step.params.get("library") == "pillow"
        if step.kind == "resize" and pillow:
            image = pillow_steps.resize(image, *_checked(_resize_to(step, image.shape[1], image.shape[0]), step),
                                        step.params["interpolation"])
        elif step.kind == "resize":
            height, width = image.shape[:2]
            size = _checked(_resize_to(step, width, height), step)
            image = cv2.resize(image, size, interpolation=getattr(cv2, f"INTER_{step.params['interpolation']}"))
        elif step.kind == "crop" and pillow:
            image = _pillow_crop(image, step)
        elif step.kind == "crop":
            height, width = image.shape[:2]
            if "central_fraction" in step.params:
                fraction = step.params["central_fraction"]
                dst_w, dst_h = int(width * fraction), int(height * fraction)
            else:
                dst_w, dst_h = step.params["width"], step.params["height"]
                if width < dst_w or height < dst_h:
                    grown = np.array([width, height], dtype=np.float64)
                    if grown[0] < dst_w:
                        grown = grown * dst_w / grown[0]
                    if grown[1] < dst_h:
                        grown = grown * dst_h / grown[1]
                    image = cv2.resize(image, _checked(tuple(int(v) for v in np.ceil(grown)), step))
                    height, width = image.shape[:2]
            top, left = (height - dst_h) // 2, (width - dst_w) // 2
            image = image[top:top + dst_h, left:left + dst_w]
        elif step.kind == "normalization":
            image = image.astype(np.float32)
            if step.params["mean"] is not None:
                image -= np.asarray(step.params["mean"], dtype=np.float32)
            if step.params["std"] is not None:
                image /= np.asarray(step.params["std"], dtype=np.float32)
        elif step.kind == "bgr_to_rgb":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        elif step.kind == "rgb_to_bgr":
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        else:  # config.parse admits no other kind
            raise ValueError(f"unknown preprocessing step {step.kind!r}")
    return image


def to_input(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """HxWxC -> 1xCxHxW float32, checked against the IR input's static shape."""
    if image.ndim == 2:
        image = image[:, :, None]
    if len(shape) == 4 and shape[1] in (1, 3) and image.shape[:2] != tuple(shape[2:]):
        raise ImageError(f"preprocessing gives {image.shape[1]}x{image.shape[0]} images, but the IR's input is "
                         f"{shape[3]}x{shape[2]} (NCHW {list(shape)}): the accuracy-check.yml does not match "
                         "the model")
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)


def read(path: Path, steps: Sequence[Step]) -> tuple:
    """The image as the protocol's reader gives it, and the steps left to apply."""
    if steps and steps[0].kind == "read":
        return pillow_steps.read_image(path), tuple(steps[1:])
    return read_image(path), tuple(steps)


def prepare(path: Path, steps: Sequence[Step], shape: Sequence[int]) -> np.ndarray:
    """Read, preprocess and lay out one image for the IR."""
    image, rest = read(path, steps)
    try:
        image = apply(image, rest)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from None
    except _cv2().error as exc:  # a last guard: one unreadable image, never a traceback in a decode thread
        raise ImageError(f"{path}: not preprocessed: OpenCV refused it: {_cv2_reason(exc)}") from None
    return to_input(image, shape)
