"""Reading the weights of a binary ``.caffemodel`` (a NetParameter), one layer at a time.

The file is never held whole: each layer message is read on its own. Its ``blobs`` are decoded
here, not by protobuf: a BlobProto's ``data`` may be packed (one length-delimited run of
little-endian floats, what Caffe writes) or, legally, unpacked (one fixed32 field per value, five
bytes each). Protobuf would hold unpacked values as 20 M Python floats or unknown fields (a 100 MB
file took 4.2 GB and 80 s before the shape was even compared), so a blob is walked twice with
numpy over the wire bytes: first to count its values and read its shape, which must agree before
anything is made, then to fill one float32 array. Peak memory is about the layer's bytes plus its
float32 values. The rest of a layer (name, type) is small and goes to protobuf.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from .errors import CaffeConversionError
from .schema import schema

# NetParameter's fields holding layers: layer (V2) and layers (V1); each one's ``blobs`` field.
LAYER_FIELDS = {100: "LayerParameter", 2: "V1LayerParameter"}
_BLOBS_FIELD = {100: 7, 2: 6}
# BlobProto: data (5, float), double_data (8, double); shape (7); legacy num/channels/height/width (1-4).
_VALUES = {5: (5, "<f4"), 8: (1, "<f8")}  # field -> (wire type when unpacked, dtype)
_FIXED_WIDTH = {1: 8, 5: 4}


class Corrupt(CaffeConversionError):
    """The weights file's protobuf framing is broken (said as a CaffeConversionError by the reader)."""


def _varint(stream, at_tag: bool = False) -> Optional[int]:
    """A protobuf varint from ``stream``; None at a clean end of the file before a tag."""
    result = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            if at_tag and shift == 0:
                return None
            raise Corrupt(f"the file ends inside a field header at byte {stream.tell()}")
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
        if shift > 63:
            raise Corrupt(f"a field header at byte {stream.tell()} is not a valid varint")


def layer_messages(stream, size: int) -> Iterator[Tuple[int, bytes]]:
    """(field number, bytes) of each layer of a binary NetParameter, one at a time."""
    while True:
        tag = _varint(stream, at_tag=True)
        if tag is None:
            return
        field, wire = tag >> 3, tag & 7
        if field == 0 or wire not in (0, 1, 2, 5):
            raise Corrupt(f"invalid field header {tag} at byte {stream.tell()}")
        if wire == 0:
            _varint(stream)
            continue
        length = 8 if wire == 1 else 4 if wire == 5 else _varint(stream)
        if stream.tell() + length > size:
            raise Corrupt(f"a field of {length} bytes at byte {stream.tell()} runs past the end of the file")
        if wire == 2 and field in LAYER_FIELDS:
            yield field, stream.read(length)
        else:
            stream.seek(length, os.SEEK_CUR)


# -- the wire format of one message, over bytes ------------------------------------------------------

def _varint_at(buf, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise Corrupt("a message ends inside a varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise Corrupt("a varint is longer than 10 bytes")


def _run_length(buf, start: int, tag: int, width: int) -> int:
    """How many records (one tag byte ``tag``, ``width`` value bytes) follow each other from ``start``:
    scanned in growing chunks, so a run of one costs as little as a long run costs per record."""
    stride = 1 + width
    most = (len(buf) - start) // stride
    if most < 2 or buf[start + stride] != tag:  # a run of one: no numpy call
        return min(most, 1)
    done, chunk = 0, 64
    while done < most:
        count = min(chunk, most - done)
        tags = np.frombuffer(buf, np.uint8, count=count * stride, offset=start + done * stride)[::stride]
        wrong = tags != tag
        if wrong.any():
            return done + int(wrong.argmax())
        done += count
        chunk *= 2
    return done


def _fields(buf) -> Iterator[Tuple[int, int, int, int, int]]:
    """(field number, wire type, start, end, records) of each field of a message: for a varint or a
    length-delimited field the value's bytes; consecutive fixed-width fields of one number (unpacked
    repeated floats) come as one item from the first tag to the end of the last value."""
    pos, size = 0, len(buf)
    while pos < size:
        at = pos
        tag, pos = _varint_at(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise Corrupt(f"field number 0 at byte {at} of a layer")
        if wire == 0:
            end = _varint_at(buf, pos)[1]
        elif wire in _FIXED_WIDTH:
            width = _FIXED_WIDTH[wire]
            if tag < 0x80 and pos + width <= size:  # one-byte tag: a run of such records is cut at once
                count = _run_length(buf, at, tag, width)
                yield number, wire, at, at + count * (1 + width), count
                pos = at + count * (1 + width)
                continue
            end = pos + width
        elif wire == 2:
            length, pos = _varint_at(buf, pos)
            end = pos + length
        else:
            raise Corrupt(f"a field of wire type {wire} (a group, which Caffe never writes) at byte {at} of a layer")
        if end > size:
            raise Corrupt(f"a field at byte {at} of a layer runs past the layer's end")
        yield number, wire, pos, end, 1
        pos = end


def split_layer(data: bytes, number: int) -> Tuple[bytes, List[memoryview]]:
    """(the layer message without its blobs, each blob's bytes) of a layer field ``number`` (100, 2)."""
    view = memoryview(data)
    blobs_field = _BLOBS_FIELD[number]
    head, blobs = [], []
    for field, wire, start, end, _ in _fields(view):
        if field == blobs_field and wire == 2:
            blobs.append(view[start:end])
        else:
            head.append(_reencode(view, field, wire, start, end))
    return b"".join(head), blobs


def _reencode(view, field: int, wire: int, start: int, end: int) -> bytes:
    if wire in _FIXED_WIDTH:  # a run keeps its own tags
        return bytes(view[start:end])
    tag = _varint_bytes(field << 3 | wire)
    return tag + (_varint_bytes(end - start) if wire == 2 else b"") + bytes(view[start:end])


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


# -- one blob ------------------------------------------------------------------------------------------

def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _blob_layout(blob, where: str) -> Tuple[Optional[List[int]], Dict[int, int]]:
    """(declared shape or None, values per field) of a blob, counted without making any value."""
    shape_parts, legacy, counts = [], {}, {5: 0, 8: 0}
    for field, wire, start, end, records in _fields(blob):
        if field in _VALUES:
            unpacked_wire, dtype = _VALUES[field]
            width = np.dtype(dtype).itemsize
            if wire == 2 and (end - start) % width:
                raise CaffeConversionError(f"{where}: {end - start} bytes of data is not a whole number of "
                                           f"{width}-byte values; the caffemodel is corrupt")
            if wire not in (2, unpacked_wire):
                raise Corrupt(f"{where}: its values (field {field}) have wire type {wire}")
            counts[field] += (end - start) // width if wire == 2 else records
        elif field == 7 and wire == 2:
            shape_parts.append(bytes(blob[start:end]))
        elif field in (1, 2, 3, 4) and wire == 0:
            legacy[field] = _int32(_varint_at(blob, start)[0])
    if shape_parts:
        shape = [int(d) for d in schema().BlobShape.FromString(b"".join(shape_parts)).dim]
    else:
        dims = [legacy.get(i, 0) for i in (1, 2, 3, 4)]
        shape = dims if any(dims) else None
    if shape is not None and any(d < 0 for d in shape):
        raise CaffeConversionError(f"{where}: the blob's shape {shape} has a negative dimension; the caffemodel "
                                   "is corrupt")
    return shape, counts


def blob_array(blob, where: str) -> np.ndarray:
    """A BlobProto's values (from its wire bytes) as float32 in the blob's declared shape: the count
    is compared with the shape before any value is made."""
    shape, counts = _blob_layout(blob, where)
    field = 5 if counts[5] else 8
    count = counts[field]
    expected = int(np.prod(shape, dtype=object)) if shape else None  # no dims: as many as it holds
    if expected is not None and count != expected:
        raise CaffeConversionError(f"{where}: the blob's shape {shape} needs {expected} values, the caffemodel "
                                   f"holds {count}; the caffemodel is truncated or corrupt, or does not "
                                   "belong to this prototxt")
    values = np.empty(count, np.float32)
    filled = 0
    unpacked_wire, dtype = _VALUES[field]
    record = np.dtype([("tag", "u1"), ("value", dtype)])
    for number, wire, start, end, records in _fields(blob) if count else ():
        if number != field:
            continue
        if wire == 2:
            chunk = np.frombuffer(blob, dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=start)
        else:
            chunk = np.frombuffer(blob, record, count=records, offset=start)["value"]
        values[filled:filled + chunk.size] = chunk
        filled += chunk.size
    return values.reshape(shape) if shape else values


def read_caffemodel(path: Path, wanted: Dict[str, str]) -> Dict[str, List[np.ndarray]]:
    """name -> blobs (float32 arrays) of the caffemodel's layers named in ``wanted`` (name -> type,
    for messages): the first layer of a name, the V2 form before the V1 one, as Model Optimizer."""
    from google.protobuf.message import DecodeError

    from omz_tools.convert import bounds
    found: Dict[int, Dict[str, List[np.ndarray]]] = {100: {}, 2: {}}
    size = 0
    try:
        with bounds.open_file(path, f"the Caffe weights file {path}", bounds.MODEL_FILE_MAX_SIZE) as stream:
            size = os.fstat(stream.fileno()).st_size
            for number, data in layer_messages(stream, size):
                head, blobs = split_layer(data, number)
                layer = getattr(schema(), LAYER_FIELDS[number]).FromString(head)
                if layer.name in wanted and layer.name not in found[number]:
                    kind = wanted[layer.name]
                    found[number][layer.name] = [
                        blob_array(blob, f"{path}: layer \"{layer.name}\" ({kind}), blob {i}")
                        for i, blob in enumerate(blobs)]
                del data, blobs
    except bounds.BoundError as exc:
        raise CaffeConversionError(str(exc)) from None
    except OSError as exc:
        raise CaffeConversionError(f"cannot read the Caffe weights file {path}: {exc}") from None
    except (Corrupt, DecodeError, RuntimeError, ValueError, RecursionError) as exc:
        raise CaffeConversionError(
            f"cannot read the Caffe weights file {path} ({size} bytes): it is not a valid binary "
            f"NetParameter ({exc}); the file is probably truncated or corrupt: download it again") from None
    return {**found[2], **found[100]}
