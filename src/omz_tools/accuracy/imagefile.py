"""Reading an image file of a dataset before either reader decodes it, within bounds.

A dataset is untrusted input: a FIFO in it would block forever, a link to ``/dev/zero`` would be read
without end, a 64-byte BMP can claim 50000x50000 pixels and a 855 KB PNG can inflate to 30000x30000.
So an image is read only if it is a regular file of at most ``OMZ_IMAGE_MAX_BYTES`` (default 256 MiB;
ImageNet's largest JPEG is under 16 MB), and its dimensions are taken from its header (Pillow's lazy
``Image.open``, which reads no pixel data) and compared with ``OMZ_IMAGE_MAX_PIXELS`` (default
100,000,000 pixels, e.g. 10000x10000; ImageNet's largest is under 20 MPixel) before OpenCV or Pillow
decodes it. Each refusal is an :class:`ImageError` naming the file and the limit: one unreadable image,
listed, while the run goes on.

A file whose header Pillow cannot read (a format only OpenCV knows, damaged data, or no Pillow
installed) is left to the decoder: OpenCV's own pixel bound, ``OPENCV_IO_MAX_IMAGE_PIXELS``, is set
to the same value when omz_tools imports OpenCV first (preprocess._cv2; a value the user set is
kept), and its refusal is an :class:`ImageError` too.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

from omz_tools import regularfile
from omz_tools.errors import OmzError
from omz_tools.limits import Limit
from omz_tools.wording import human_size

IMAGE_MAX_BYTES = Limit("the size of an image file", "OMZ_IMAGE_MAX_BYTES", 256 << 20)
IMAGE_MAX_PIXELS = Limit("the pixels of an image", "OMZ_IMAGE_MAX_PIXELS", 100_000_000, kind="count")


class ImageError(OmzError):
    """An image that cannot be read or decoded; the message says which and why."""


def read_file(path: Path) -> bytes:
    """The bytes of an image file, read before decoding so that a file that cannot be read is not
    called one that cannot be decoded; raises :class:`ImageError`."""
    limit = IMAGE_MAX_BYTES
    max_bytes = limit.value()
    try:
        return regularfile.read(Path(path), max_bytes, f"{human_size(max_bytes)} ({limit.env_var})")
    except regularfile.FileReadError as exc:
        if regularfile.is_missing(exc):
            raise ImageError(f"{path}: no such file") from None
        if exc.kind == "a folder":
            raise ImageError(f"{path}: is a folder, not an image") from None
        if exc.kind is not None:
            raise ImageError(f"{path}: not an image: {exc.problem}; nothing was read from it") from None
        if exc.too_large:
            raise ImageError(f"{path}: not read: {exc.problem}. {limit.hint()}") from None
        raise ImageError(f"{path}: cannot read: {exc.problem}") from None


_QUIETED = False


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        return None
    global _QUIETED
    if not _QUIETED:
        import warnings
        # Our bound replaces the warning Pillow's reader would print (over 2x its MAX_IMAGE_PIXELS,
        # its DecompressionBombError still stops the Pillow reader: pillow_steps says so).
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        _QUIETED = True
    return Image


def _pillow_size(Image, data: bytes) -> Optional[tuple]:
    """(width, height) from the first of Pillow's format plugins that accepts the header, as
    ``Image.open`` finds it, but without Image.open's own pixel check (ours replaces it, so one bound,
    one message). The plugin's constructor parses the header only; no pixel is decoded."""
    for loader in (Image.preinit, Image.init):
        loader()
        for name in list(Image.ID):
            factory, accept = Image.OPEN[name]
            accepted = accept(data[:16]) if accept is not None else True
            if not accepted or isinstance(accepted, str):
                continue  # a string: "this format, but a variant Pillow cannot read"
            try:
                with factory(io.BytesIO(data), "") as image:
                    return tuple(image.size)
            except Exception:  # noqa: BLE001 - a header this plugin cannot parse: the next one, or the decoder
                continue
    return None


def header_size(path: Path, data: bytes) -> Optional[tuple]:
    """(width, height) from the header, None if Pillow cannot tell; ImageError if over the bound."""
    Image = _pillow()
    if Image is None:
        return None
    size = _pillow_size(Image, data)
    if size is None:
        return None
    limit = IMAGE_MAX_PIXELS
    pixels = int(size[0]) * int(size[1])
    if pixels > limit.value():
        raise ImageError(f"{path}: not decoded: its header declares {size[0]}x{size[1]} = {pixels:,} pixels, "
                         f"more than {limit.what} may be ({limit.value():,}, {limit.env_var}). {limit.hint()}")
    return size
