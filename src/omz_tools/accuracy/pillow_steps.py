"""The Pillow side of Open Model Zoo's accuracy checker: its ``pillow_imread`` reader and the
``use_pillow`` resize and crop.

Pillow is imported only here, and only when a file asks for it (config.parse has already said so
when it is missing). The arithmetic is the accuracy checker's:

- reading: ``np.array(Image.open(file).convert("RGB"))``, RGB order, 8 bits; a grayscale, palette
  or RGBA file goes through Pillow's own conversion (alpha dropped, not composited), and EXIF
  orientation is not applied (OpenCV's reader applies it);
- resize: ``Image.fromarray(pixels).resize((w, h), filter)``; the target size comes from the same
  ``aspect_ratio_scale`` formulas as the OpenCV resize. Pillow sees the array as RGB, but its
  filters treat each channel alike, so a BGR array stays BGR;
- crop: the box starts at ``int(round((size - crop) / 2))`` (Python's round, half to even, where
  the OpenCV crop floors), and ``Image.crop`` fills with zeros what falls outside a too small image
  instead of enlarging it first.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from omz_tools.version import pip_install


def _image_module():
    from omz_tools.accuracy.preprocess import ImageError
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImageError(f"Pillow is not installed ({exc}); install it with: {pip_install('accuracy')} "
                         "(or pillow)") from None
    return Image


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 HxWx3, as the accuracy checker's ``pillow_imread``; raises ImageError."""
    from omz_tools.accuracy.imagefile import ImageError, header_size, read_file
    Image = _image_module()
    # Image.open on the bytes decodes exactly as on the open file the accuracy checker passes.
    data = read_file(path)
    if data:
        header_size(path, data)  # refuses a header declaring more pixels than the bound, before decoding
    try:
        return np.array(Image.open(io.BytesIO(data)).convert("RGB"))
    except Image.UnidentifiedImageError:
        kind = "an empty file" if not data else f"{len(data)} bytes starting {data[:8]!r}"
        raise ImageError(f"{path}: not an image Pillow can decode ({kind}: no format Pillow knows)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: refused by Pillow as a possible decompression bomb ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Truncated or corrupt data raise OSError, ValueError, SyntaxError or EOFError.
        reason = " ".join(str(exc).split()) or type(exc).__name__
        kind = "an empty file" if not data else f"{len(data)} bytes"
        raise ImageError(f"{path}: not an image Pillow can decode ({kind}: {reason})") from None


def _as_pillow(pixels: np.ndarray):
    if pixels.dtype != np.uint8:
        # config.parse refuses a Pillow step after a float one; this is the guard behind it.
        raise ValueError(f"a Pillow step got {pixels.dtype} pixels; it takes 8-bit ones")
    return _image_module().fromarray(pixels)


def resize(pixels: np.ndarray, width: int, height: int, interpolation: str) -> np.ndarray:
    """``Image.fromarray(pixels).resize((width, height), Image.Resampling[interpolation])``."""
    Image = _image_module()
    resized = np.array(_as_pillow(pixels).resize((width, height), Image.Resampling[interpolation]))
    return resized[:, :, None] if resized.ndim == 2 else resized


def crop_box(width: int, height: int, dst_w: int, dst_h: int) -> tuple:
    """(left, top, right, bottom) of the accuracy checker's Pillow center crop."""
    top = int(round((height - dst_h) / 2.0))
    left = int(round((width - dst_w) / 2.0))
    return left, top, left + dst_w, top + dst_h


def crop(pixels: np.ndarray, dst_w: int, dst_h: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    cropped = np.array(_as_pillow(pixels).crop(crop_box(width, height, dst_w, dst_h)))
    return cropped[:, :, None] if cropped.ndim == 2 else cropped
