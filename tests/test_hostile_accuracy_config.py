"""Hostile accuracy-check.yml files (issue 20, items 13 and 14): sizes that would make OpenCV allocate
gigabytes or overflow, and YAML that expands without bound, are refused when the file is read, in one
message naming the file, the key and the limit; preprocessing steps whose output an image's shape
would make empty or huge are one unreadable image, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import one_message
from helpers_accuracy import NAME, accuracy_check_yml, build_small, needs_opencv, run_cli, write_images

pytestmark = pytest.mark.hostile_images

SIZE_KEY = "models[1].datasets[0].preprocessing[{n}].{key}"


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accuracy-check.yml"
    path.write_text(text)
    return path


def _with(resize: str = "size: 72", crop: str = "size: 64") -> str:
    """The small net's protocol with the resize and crop lines replaced."""
    text = accuracy_check_yml()
    head, tail = text.split("  - name: small-se-resnet\n", 1)
    tail = tail.replace("            size: 72\n", f"            {resize}\n", 1)
    tail = tail.replace("            size: 64\n", f"            {crop}\n", 1)
    return head + "  - name: small-se-resnet\n" + tail


@pytest.mark.parametrize("resize,crop,key,found", [
    ("size: 3000000000", "size: 64", SIZE_KEY.format(n=0, key="size"), "3,000,000,000"),
    ("size: 60000", "size: 64", SIZE_KEY.format(n=0, key="size"), "60,000"),
    ("size: 72", "size: 3000000000", SIZE_KEY.format(n=1, key="size"), "3,000,000,000"),
    ("dst_width: 72\n            dst_height: 8193", "size: 64", SIZE_KEY.format(n=0, key="dst_height"), "8,193"),
])
def test_a_huge_resize_or_crop_size_is_refused_naming_the_key(tmp_path, resize, crop, key, found):
    from omz_tools.accuracy.config import AccuracyConfigError, load
    path = _config(tmp_path, _with(resize, crop))
    with pytest.raises(AccuracyConfigError) as caught:
        load(path)
    assert str(caught.value) == (
        f"{path}: {key}: expected at most 8,192 pixels (the bound on a resize or crop size), found {found}. "
        "If the file is trusted and needs more, raise OMZ_PREPROCESS_MAX_SIZE (now 8,192).")


def test_a_crop_size_written_3e9_is_refused_as_not_an_integer(tmp_path):
    from omz_tools.accuracy.config import AccuracyConfigError, load
    path = _config(tmp_path, _with(crop="size: 3e9"))  # YAML 1.1 reads 3e9 as a string
    with pytest.raises(AccuracyConfigError, match=r"preprocessing\[1\]\.size: expected a positive integer, "
                                                  r"found '3e9'"):
        load(path)
    path = _config(tmp_path, _with(crop="size: 3.0e+9"))
    with pytest.raises(AccuracyConfigError, match=r"preprocessing\[1\]\.size: expected a positive integer, "
                                                  r"found 3000000000.0"):
        load(path)


def test_the_size_bound_is_the_environment_s(tmp_path, monkeypatch):
    from omz_tools.accuracy.config import load
    path = _config(tmp_path, _with("size: 9000"))
    monkeypatch.setenv("OMZ_PREPROCESS_MAX_SIZE", "9000")
    assert load(path).steps[0].params["width"] == 9000


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    needs_opencv()
    ns = build_small(tmp_path_factory.mktemp("hostile_config"))
    ns.dataset = ns.root / "data"
    write_images(ns.dataset, 2, seed=1)
    ns.annotation = ns.root / "val.txt"
    ns.annotation.write_text("img_0000.jpg 0\nimg_0001.jpg 1\n")
    return ns


@pytest.mark.parametrize("size", [3000000000, 60000])
@pytest.mark.parametrize("command", ["omz-accuracy-check", "omz-quantizer"])
def test_both_commands_refuse_a_huge_size_in_one_message(small, tmp_path, size, command):
    if command == "omz-quantizer":
        pytest.importorskip("nncf", reason="needs NNCF: pip install -e '.[test]'")
    small.config.write_text(_with(f"size: {size}"))
    try:
        extra = ["-o", tmp_path / "out"] if command == "omz-quantizer" else ["--precisions", "FP32"]
        proc = run_cli(command, "--name", NAME, "--registry", small.registry, "-d", small.out,
                       "--dataset", small.dataset, "--annotation", small.annotation, *extra, timeout=300)
    finally:
        small.config.write_text(accuracy_check_yml())
    one_message(proc, f"{small.config}: {SIZE_KEY.format(n=0, key='size')}: expected at most 8,192 pixels",
                "OMZ_PREPROCESS_MAX_SIZE")


# -- a step's output size from the image's shape --------------------------------------------------

def _steps(text: str):
    import yaml

    from omz_tools.accuracy.config import parse
    return parse(yaml.safe_load(text), Path("accuracy-check.yml")).steps


@pytest.mark.parametrize("scale,size,env,fragment", [
    # 2000x1 with aspect_ratio_scale height: 224 * 1 / 2000 rounds to a height of 0 (cv2.error before).
    ("height", (2000, 1), {}, "would make it 224x0 pixels"),
    # 2000x1 with aspect_ratio_scale width: 448,000x224 (100 M pixels in all, over a bound of 10 M).
    ("width", (2000, 1), {"OMZ_IMAGE_MAX_PIXELS": "10000000"}, "would make it 448000x224 pixels"),
])
@pytest.mark.parametrize("library", ["opencv", "pillow"])
def test_a_resize_the_image_s_shape_makes_empty_or_huge_is_one_unreadable_image(tmp_path, monkeypatch, scale,
                                                                                size, env, fragment, library):
    needs_opencv()
    import cv2
    if library == "pillow":
        pytest.importorskip("PIL")
    from omz_tools.accuracy.preprocess import ImageError, prepare
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    image = tmp_path / "strip.png"
    cv2.imwrite(str(image), np.full((size[1], size[0], 3), 128, np.uint8))
    pillow = "\n            use_pillow: true" if library == "pillow" else ""
    steps = _steps(_with(f"size: 224\n            aspect_ratio_scale: {scale}{pillow}"))
    with pytest.raises(ImageError) as caught:
        prepare(image, steps, [1, 3, 64, 64])
    message = str(caught.value)
    assert message.startswith(f"{image}: not preprocessed: the resize step {fragment} (expected 1x1 up to "), message


def test_a_crop_that_enlarges_a_thin_image_past_the_bound_is_one_unreadable_image(tmp_path, monkeypatch):
    needs_opencv()
    import cv2

    from omz_tools.accuracy.preprocess import ImageError, prepare
    monkeypatch.setenv("OMZ_IMAGE_MAX_PIXELS", "1000000")
    image = tmp_path / "strip.png"
    cv2.imwrite(str(image), np.full((1, 2000, 3), 128, np.uint8))
    steps = [s for s in _steps(_with()) if s.kind == "crop"]
    with pytest.raises(ImageError, match=r"the crop step would make it 128000x64 pixels"):
        prepare(image, steps, [1, 3, 64, 64])


# -- YAML that expands without bound (item 14): the loader model.yml has, for accuracy-check.yml too -

def alias_bomb() -> str:
    """A 'billion laughs' accuracy-check.yml: 9 levels of 10 aliases, 10^9 strings once expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]")
    lines.append("models: *a9")
    return "\n".join(lines) + "\n"


_LOAD = """
import sys
from omz_tools.accuracy.config import AccuracyConfigError, load
try:
    load(sys.argv[1])
    print("loaded")
except AccuracyConfigError as exc:
    print(exc)
"""


def load_in_a_process(path: Path) -> str:
    """What config.load says of ``path``, in a fresh process (a hang or a blow-up stays there)."""
    done = subprocess.run([sys.executable, "-c", _LOAD, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stdout.strip()


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    text = alias_bomb()
    assert len(text) < 800
    path = _config(tmp_path, text)
    assert load_in_a_process(path) == (
        f"{path}: a4[1]: expected YAML aliases to expand to at most 100000 nodes and characters in all, found "
        "more (repeating the anchor at line 4, column 5)")


@pytest.mark.parametrize("make,expected", [
    (lambda p: os.mkfifo(p), "expected a regular file, found a named pipe (FIFO)"),
    (lambda p: os.symlink("/dev/zero", p), "expected a regular file, found a character device"),
    (lambda p: p.write_bytes(b"# padding\n" * 500_000), "expected a file of at most 4 MiB, found a larger one"),
    (lambda p: p.write_text("models: " + "[" * 200 + "]" * 200 + "\n"),
     "models" + "[0]" * 64 + ": expected at most 64 levels of nesting, found more at line 1, column 73"),
    (lambda p: p.write_text("models:\n  - top_k: " + "9" * 5000 + "\n"),
     "models[0].top_k: expected an integer of at most 100 digits, found one of 5000 characters at line 2, "
     "column 12"),
    (lambda p: p.write_text("models: [\n"), "expected valid YAML, found a syntax error at line 2, column 1: "),
    (lambda p: p.write_text("models: !!timestamp 2020-13-45\n"), "expected YAML values that can be read, "),
])
def test_the_bounds_of_model_yml_apply_to_accuracy_check_yml(tmp_path, make, expected):
    path = tmp_path / "accuracy-check.yml"
    make(path)
    message = load_in_a_process(path)
    assert message.startswith(f"{path}: {expected}"), message


def test_an_error_shows_a_huge_value_cut(tmp_path):
    from omz_tools.accuracy.config import AccuracyConfigError, load
    path = _config(tmp_path, "models: " + "x" * 3_000_000 + "\n")
    with pytest.raises(AccuracyConfigError) as caught:
        load(path)
    shown = (repr("x" * 60) + "...")[:57] + "..."
    assert str(caught.value) == f"{path}: models: expected a non-empty list, found {shown}"


def test_the_accuracy_check_names_the_bomb_in_one_message(small):
    small.config.write_text(alias_bomb())
    try:
        proc = run_cli("omz-accuracy-check", "--name", NAME, "--registry", small.registry, "-d", small.out,
                       "--dataset", small.dataset, "--annotation", small.annotation, timeout=120)
    finally:
        small.config.write_text(accuracy_check_yml())
    one_message(proc, f"{small.config}: a4[1]: expected YAML aliases to expand to at most 100000 nodes")
