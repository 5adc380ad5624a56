"""Hostile datasets for omz-accuracy-check and omz-quantizer (issue 20, items 9-12), with real OpenCV,
Pillow, OpenVINO and NNCF: a FIFO and a link to /dev/zero among the images, a 64-byte BMP claiming
50000x50000 pixels, an 875 KB PNG inflating to 30000x30000. Each is one unreadable image, named with
its limit, the run goes on (the accuracy check lists it, the quantizer names it and writes nothing),
nothing hangs and memory stays small.

Marked ``hostile_images``: CI runs these again with OpenCV 5.x (.ci/run step 3).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from conftest import events, one_message
from helpers_accuracy import NAME, build_small, needs_opencv, run_cli, write_images
from helpers_memory import PEAK_SOURCE

pytestmark = pytest.mark.hostile_images


def bmp_bomb(width: int = 50000, height: int = 50000) -> bytes:
    """A 64-byte 24-bit BMP whose header claims ``width`` x ``height``."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    data = b"\0" * 10
    return struct.pack("<2sIHHI", b"BM", 14 + 40 + len(data), 0, 0, 54) + info + data


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid grayscale PNG of zeros: 30000x30000 compresses to about 875 KB (2.3 s to write)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    compressor, parts = zlib.compressobj(9), []
    row = b"\0" * (1 + width)
    rows_per_block = max(1, (4 << 20) // len(row))
    for start in range(0, height, rows_per_block):
        parts.append(compressor.compress(row * min(rows_per_block, height - start)))
    parts.append(compressor.flush())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


HOSTILE = ("fifo.png", "zero.jpg", "bomb.bmp", "bomb.png")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    needs_opencv()
    pytest.importorskip("PIL", reason="needs Pillow: pip install -e '.[test]'")
    ns = build_small(tmp_path_factory.mktemp("hostile"))
    ns.dataset = ns.root / "data"
    ns.good = write_images(ns.dataset, 6, seed=5)
    os.mkfifo(ns.dataset / "fifo.png")
    os.symlink("/dev/zero", ns.dataset / "zero.jpg")
    (ns.dataset / "bomb.bmp").write_bytes(bmp_bomb())
    (ns.dataset / "bomb.png").write_bytes(png_bomb())
    ns.annotation = ns.root / "val.txt"
    names = [p.name for p in ns.good[:3]] + list(HOSTILE) + [p.name for p in ns.good[3:]]
    ns.annotation.write_text("".join(f"{name} {i % 10}\n" for i, name in enumerate(names)))
    return ns


def _expected_fragments() -> dict:
    return {
        "fifo.png": "expected a regular file, found a named pipe (FIFO)",
        "zero.jpg": "expected a regular file, found a character device",
        "bomb.bmp": "50000x50000 = 2,500,000,000 pixels",
        "bomb.png": "30000x30000 = 900,000,000 pixels",
    }


def test_accuracy_check_lists_each_hostile_image_and_goes_on(small):
    proc = run_cli("omz-accuracy-check", "--name", NAME, "--registry", small.registry, "-d", small.out,
                   "--dataset", small.dataset, "--annotation", small.annotation, "--precisions", "FP32",
                   "--progress_format", "json", timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    evs = events(proc.stdout)
    errors = {Path(e["image"]).name: e["message"] for e in evs if e["$type"] == "accuracy_check_image_error"}
    assert sorted(errors) == sorted(HOSTILE)
    for name, fragment in _expected_fragments().items():
        assert str(small.dataset / name) in errors[name] and fragment in errors[name], errors[name]
    result = evs[-1]["results"][0]
    assert (result["evaluated"], result["images"], result["unreadable"]) == (6, 10, 4)
    assert result["verdict"] == "incomplete"


def test_quantizer_names_each_hostile_image_and_writes_nothing(small, tmp_path):
    pytest.importorskip("nncf", reason="needs NNCF: pip install -e '.[test]'")
    out = tmp_path / "out"
    proc = run_cli("omz-quantizer", "--name", NAME, "--registry", small.registry, "-d", small.out,
                   "--dataset", small.dataset, "--annotation", small.annotation, "-o", out, timeout=300)
    one_message(proc, "4 of 10 images cannot be used", *(str(small.dataset / n) for n in HOSTILE),
                *_expected_fragments().values(), "Nothing was written")
    assert not (out / "public" / NAME / "FP16-INT8").exists()


def test_a_limit_that_does_not_parse_is_a_usage_error(small):
    from helpers_accuracy import clean_env
    proc = run_cli("omz-accuracy-check", "--name", NAME, "--registry", small.registry, "-d", small.out,
                   "--dataset", small.dataset, "--annotation", small.annotation, "--precisions", "FP32",
                   env={**clean_env(), "OMZ_IMAGE_MAX_PIXELS": "lots"}, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "OMZ_IMAGE_MAX_PIXELS='lots' does not set the pixels of an image" in proc.stderr


# -- the readers, one file at a time, in a fresh process (a hang or a blow-up stays there) ----------

_PROBE = PEAK_SOURCE + """
import sys
from pathlib import Path
from omz_tools.accuracy.config import Step
from omz_tools.accuracy.preprocess import read
from omz_tools.errors import OmzError
steps = (Step("read", {"library": "pillow", "mode": "RGB"}),) if sys.argv[2] == "pillow" else ()
try:
    image, _ = read(Path(sys.argv[1]), steps)
    print("decoded", image.shape)
except OmzError as exc:
    print("refused", exc)
print("peak_kib", peak_rss_bytes() // 1024)
"""


def probe(path: Path, reader: str, *, env: dict = None, block_pillow: bool = False) -> tuple:
    """(first line printed, peak RSS in MiB) of reading ``path`` with the OpenCV or Pillow reader."""
    code = ("import sys; sys.modules['PIL'] = None\n" if block_pillow else "") + _PROBE
    done = subprocess.run([sys.executable, "-c", code, str(path), reader], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    return lines[0], int(lines[-1].split()[1]) / 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    needs_opencv()
    folder = tmp_path_factory.mktemp("files")
    os.mkfifo(folder / "fifo.png")
    os.symlink("/dev/zero", folder / "zero.png")
    (folder / "bomb.bmp").write_bytes(bmp_bomb())
    (folder / "bomb.png").write_bytes(png_bomb())
    (folder / "small_bomb.png").write_bytes(png_bomb(3000, 3000))
    (folder / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(3 << 20))
    return folder


@pytest.mark.parametrize("reader", ["opencv", "pillow"])
def test_a_fifo_is_refused_without_blocking(files, reader):
    if reader == "pillow":
        pytest.importorskip("PIL")
    line, _ = probe(files / "fifo.png", reader)
    assert line == f"refused {files / 'fifo.png'}: not an image: expected a regular file, found a named pipe " \
                   "(FIFO); nothing was read from it"


@pytest.mark.parametrize("reader", ["opencv", "pillow"])
def test_a_link_to_dev_zero_is_refused_and_reads_nothing(files, reader):
    if reader == "pillow":
        pytest.importorskip("PIL")
    line, peak = probe(files / "zero.png", reader)
    assert line.startswith(f"refused {files / 'zero.png'}: not an image: expected a regular file, found a "
                           "character device"), line
    assert peak < 400, f"{peak:.0f} MiB"


def test_a_file_over_the_size_bound_is_refused_naming_the_variable(files):
    line, _ = probe(files / "big.png", "opencv", env={"OMZ_IMAGE_MAX_BYTES": "1M"})
    assert line.startswith(f"refused {files / 'big.png'}: not read: expected a file of at most 1.0 MiB "
                           "(OMZ_IMAGE_MAX_BYTES), found a larger one."), line
    assert "raise OMZ_IMAGE_MAX_BYTES (now 1.0 MiB)" in line
    line, _ = probe(files / "big.png", "opencv")  # 3 MiB of noise under the default: read, then not decodable
    assert line.startswith(f"refused {files / 'big.png'}: not an image OpenCV can decode"), line


@pytest.mark.parametrize("reader", ["opencv", "pillow"])
def test_a_bmp_claiming_50000x50000_in_64_bytes_is_one_unreadable_image(files, reader):
    if reader == "pillow":
        pytest.importorskip("PIL")
    line, _ = probe(files / "bomb.bmp", reader)
    assert line.startswith(f"refused {files / 'bomb.bmp'}: not decoded: "), line
    assert "its header declares 50000x50000 = 2,500,000,000 pixels" in line and "OMZ_IMAGE_MAX_PIXELS" in line, line


def test_without_pillow_opencv_s_own_pixel_bound_is_one_unreadable_image(files):
    line, _ = probe(files / "bomb.bmp", "opencv", block_pillow=True)
    assert line.startswith(f"refused {files / 'bomb.bmp'}: not an image OpenCV can decode (64 bytes: OpenCV "
                           "refused it: (-215:Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS"), line


def test_without_pillow_opencv_s_own_pixel_bound_is_ours(files):
    line, _ = probe(files / "small_bomb.png", "opencv", block_pillow=True, env={"OMZ_IMAGE_MAX_PIXELS": "8999999"})
    assert line.startswith(f"refused {files / 'small_bomb.png'}: not an image OpenCV can decode"), line
    assert "CV_IO_MAX_IMAGE_PIXELS" in line, line
    line, _ = probe(files / "small_bomb.png", "opencv", block_pillow=True, env={"OMZ_IMAGE_MAX_PIXELS": "9000000"})
    assert line == "decoded (3000, 3000, 3)", line


@pytest.mark.parametrize("reader", ["opencv", "pillow"])
def test_a_png_decompression_bomb_is_refused_from_its_header(files, reader):
    pytest.importorskip("PIL")
    line, peak = probe(files / "bomb.png", reader)
    assert line == (f"refused {files / 'bomb.png'}: not decoded: its header declares 30000x30000 = 900,000,000 "
                    "pixels, more than the pixels of an image may be (100,000,000, OMZ_IMAGE_MAX_PIXELS). If the "
                    "file is trusted and needs more, raise OMZ_IMAGE_MAX_PIXELS (now 100,000,000)."), line
    assert peak < 400, f"{peak:.0f} MiB"


@pytest.mark.parametrize("reader", ["opencv", "pillow"])
def test_the_pixel_bound_is_the_environment_s(files, reader):
    pytest.importorskip("PIL")
    line, _ = probe(files / "small_bomb.png", reader, env={"OMZ_IMAGE_MAX_PIXELS": "8_999_999"})
    assert "3000x3000 = 9,000,000 pixels" in line and "(now 8,999,999)" in line, line
    line, _ = probe(files / "small_bomb.png", reader, env={"OMZ_IMAGE_MAX_PIXELS": "9000000"})
    assert line == "decoded (3000, 3000, 3)", line
    line, _ = probe(files / "small_bomb.png", reader, env={"OMZ_IMAGE_MAX_PIXELS": "lots"})
    assert "OMZ_IMAGE_MAX_PIXELS='lots' does not set the pixels of an image" in line, line


_ANNOTATION = """
import sys
from pathlib import Path
from omz_tools.accuracy import dataset
try:
    if sys.argv[3] == "annotation":
        dataset.read_annotation(Path(sys.argv[1]), Path(sys.argv[2]))
    else:
        dataset.class_ids(Path(sys.argv[1]))
    print("read")
except dataset.DatasetError as exc:
    print(exc)
"""


@pytest.mark.parametrize("what", ["annotation", "label file"])
@pytest.mark.parametrize("entry", ["fifo", "zero", "big"])
def test_an_annotation_or_label_file_that_is_a_fifo_a_device_or_huge_is_refused(tmp_path, what, entry):
    path = tmp_path / "val.txt"
    if entry == "fifo":
        os.mkfifo(path)
    elif entry == "zero":
        os.symlink("/dev/zero", path)
    else:
        path.write_text("img.png 0\n" * 120_000)  # 1.2 MB
    done = subprocess.run([sys.executable, "-c", _ANNOTATION, str(path), str(tmp_path), what.split()[0]],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OMZ_ANNOTATION_MAX_BYTES": "1M"})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    expected = {"fifo": "expected a regular file, found a named pipe (FIFO).",
                "zero": "expected a regular file, found a character device.",
                "big": "expected a file of at most 1.0 MiB (OMZ_ANNOTATION_MAX_BYTES), found a larger one. If the "
                       "file is trusted and needs more, raise OMZ_ANNOTATION_MAX_BYTES (now 1.0 MiB)."}[entry]
    assert done.stdout.strip() == f"cannot read {what} {path}: {expected}", done.stdout
