"""Output folders that point outside -o: a precision folder (FP32, FP16, FP16-INT8) that is a symbolic
link to something other than a folder is refused by omz-converter and omz-quantizer, and what the link
names is left as it was; links to folders and dangling links stay honoured (tests/test_convert_e2e.py)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers_accuracy import NAME, accuracy_check_yml, run_cli
from helpers_caffe import (
    SMALL_CLASSES, SMALL_INPUT_SHAPE, file_digest, small_se_resnet_prototxt, write_caffemodel, write_model_yml,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The small SE-ResNet's files where omz-downloader puts them, in a registry marked quantizable."""
    root = tmp_path_factory.mktemp("outputs")
    registry, dl = root / "registry", root / "dl"
    folder = dl / "public" / NAME
    folder.mkdir(parents=True)
    prototxt = folder / f"{NAME}.prototxt"
    prototxt.write_text(small_se_resnet_prototxt())
    write_caffemodel(prototxt, folder / f"{NAME}.caffemodel", seed=3)
    files = [(f, *file_digest(folder / f), f"https://example.com/{f}") for f in (prototxt.name, f"{NAME}.caffemodel")]
    write_model_yml(registry, NAME, files, input_shape=SMALL_INPUT_SHAPE, outputs={"prob": [1, SMALL_CLASSES]},
                    top_extra="quantizable: yes\n")
    (registry / "public" / NAME / "accuracy-check.yml").write_text(accuracy_check_yml())
    return SimpleNamespace(root=root, registry=registry, dl=dl)


def _victims(where: Path) -> dict:
    """Things outside -o that a link may name: a file and a FIFO (never the system's own devices)."""
    where.mkdir(parents=True)
    victim = where / "precious.txt"
    victim.write_text("not an IR: must survive")
    fifo = where / "a-fifo"
    os.mkfifo(fifo)
    return {"file": victim, "fifo": fifo}


def _untouched(victims: dict) -> None:
    assert victims["file"].read_text() == "not an IR: must survive"
    assert victims["fifo"].is_fifo()
    assert sorted(p.name for p in victims["file"].parent.iterdir()) == ["a-fifo", "precious.txt"]


@pytest.mark.native
@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_converter_refuses_a_precision_link_to_something_not_a_folder(small, tmp_path, kind):
    victims = _victims(tmp_path / "elsewhere")
    out = tmp_path / "out"
    conv_dir = out / "public" / NAME
    conv_dir.mkdir(parents=True)
    link = conv_dir / "FP16"
    link.symlink_to(victims[kind])
    proc = run_cli("omz-converter", "--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", out,
                   "--backend", "native")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    said = f"{link} is a symbolic link to {victims[kind]}, {'a regular file' if kind == 'file' else 'a FIFO'}, " \
           "not a folder"
    error, failed = proc.stderr.split("FAILED:\n")
    assert error.startswith(f"Error: {NAME}: {said}") and "Nothing was changed there" in error, proc.stderr
    assert failed.splitlines() == [error.strip()[len("Error: "):]], proc.stderr
    _untouched(victims)
    assert link.is_symlink() and Path(os.readlink(link)) == victims[kind]
    # Refused before converting: FP32, which comes first, was not installed either.
    assert not (conv_dir / "FP32").exists() and "phase native" not in proc.stdout, proc.stdout


@pytest.mark.native
def test_converter_refuses_a_link_to_a_link_to_a_file(small, tmp_path):
    """The check follows the whole chain: FP32 -> a link -> a file."""
    victims = _victims(tmp_path / "elsewhere")
    hop = tmp_path / "hop"
    hop.symlink_to(victims["file"])
    out = tmp_path / "out"
    (out / "public" / NAME).mkdir(parents=True)
    (out / "public" / NAME / "FP32").symlink_to(hop)
    proc = run_cli("omz-converter", "--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", out,
                   "--backend", "native", "--precisions", "FP32")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"to {hop} (through links: {victims['file']}), a regular file, not a folder" in proc.stderr, proc.stderr
    _untouched(victims)
    assert hop.is_symlink()


def test_quantizer_refuses_a_precision_link_to_a_file_before_any_work(small, tmp_path):
    pytest.importorskip("nncf", reason="needs NNCF: pip install -e '.[test]'")
    pytest.importorskip("cv2", reason="needs OpenCV: pip install -e '.[test]'")
    from helpers_accuracy import write_images
    out = tmp_path / "out"
    converted = run_cli("omz-converter", "--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", out,
                        "--backend", "native", "--precisions", "FP32")
    assert converted.returncode == 0, converted.stdout + converted.stderr
    victims = _victims(tmp_path / "elsewhere")
    link = out / "public" / NAME / "FP16-INT8"
    link.symlink_to(victims["file"])
    images = tmp_path / "calib"
    write_images(images, 4, seed=1)
    proc = run_cli("omz-quantizer", "--name", NAME, "--registry", small.registry, "-d", out,
                   "--dataset", images, "--subset_size", "4")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{link} is a symbolic link to {victims['file']}" in lines[0], proc.stderr
    assert "calibrate" not in proc.stdout  # refused at the plan, before NNCF ran
    _untouched(victims)
