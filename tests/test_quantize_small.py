"""omz-quantizer on a small SE-ResNet converted by the project, with real NNCF and OpenVINO: the
FP16-INT8 IR in Open Model Zoo's layout, quantized, agreeing with FP32; the up-to-date record,
--dry_run, refusals and bad input leaving nothing at the final path."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import events, one_message
from helpers_accuracy import (
    KIND_SIZE, NAME, build_small, image_kinds, needs_opencv, reference_scores, run_cli, write_images,
    write_kind_images,
)
from helpers_caffe import SMALL_CLASSES, assert_not_saturated


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The small net with its classifier fitted to 10 synthetic image kinds (class k: kind k)."""
    needs_opencv()
    pytest.importorskip("nncf", reason="needs NNCF: pip install -e '.[test]'")
    kinds = image_kinds(SMALL_CLASSES, seed=17)
    ns = build_small(tmp_path_factory.mktemp("quant"), kinds=kinds)
    ns.kinds = kinds
    ns.calib = ns.root / "calib"
    write_images(ns.calib, 80, seed=11)
    ns.kind_calib = ns.root / "kind_calib"
    write_kind_images(ns.kind_calib, kinds, 8, seed=2, size=KIND_SIZE)
    ns.target = ns.out / "public" / NAME / "FP16-INT8"
    return ns


def quantizer(small, *args):
    return run_cli("omz-quantizer", "--name", NAME, "--registry", small.registry, "-d", small.out, *args)


def fake_quantize_count(xml) -> int:
    import openvino as ov
    return sum(op.get_type_name() == "FakeQuantize" for op in ov.Core().read_model(str(xml)).get_ops())


def test_dry_run_writes_nothing(small):
    proc = quantizer(small, "--dataset", small.calib, "--subset_size", "16", "--dry_run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"calibration: 16 of 80 images in {small.calib}" in proc.stdout
    assert "nncf.quantize(preset=performance, target_device=CPU, subset_size=16)" in proc.stdout
    assert f"output: {small.target / (NAME + '.xml')}" in proc.stdout
    assert not small.target.exists()


def test_quantizes_agrees_with_fp32_and_is_then_up_to_date(small, tmp_path):
    proc = quantizer(small, "--dataset", small.kind_calib, "--subset_size", "64", "--progress_format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    end = events(proc.stdout)[-1]  # NNCF's bars went to stderr
    assert end["$type"] == "quantization_end" and end["calibration_images"] == 64 and not end["skipped"]
    xml = small.target / f"{NAME}.xml"
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    assert fake_quantize_count(xml) == end["fake_quantize"] > 0
    assert not list(small.target.parent.glob(".FP16-INT8*"))  # no staging folder left behind
    # Top-1 of the INT8 IR against FP32 on held-out images (neither fitted on nor calibrated on): FP32
    # knows the kinds, with margins and a softmax far from one-hot, so agreement is not a given.
    images, kinds = write_kind_images(tmp_path / "eval", small.kinds, 6, seed=99, size=KIND_SIZE)
    scores = reference_scores(small.irs["FP32"], images)
    assert_not_saturated(scores)
    fp32 = scores.argmax(axis=1)
    accuracy = float(np.mean(fp32 == kinds))
    assert accuracy >= 0.9, f"FP32 classifies {accuracy:.0%} of 60 held-out images right"
    int8 = reference_scores(xml, images).argmax(axis=1)
    agreement = float(np.mean(fp32 == int8))
    ranked = np.sort(np.log(scores), axis=1)
    print(f"small net: FP32 accuracy {accuracy:.0%}, top prob {scores.max():.3f}, median top-1 - top-2 logit "
          f"margin {np.median(ranked[:, -1] - ranked[:, -2]):.2f}; INT8 top-1 agreement {agreement:.0%}")
    assert agreement >= 0.9, f"INT8 top-1 agrees with FP32 on {agreement:.0%} of 60 images"
    # Same inputs: skipped from the record, the files untouched.
    before = xml.stat().st_mtime_ns
    proc = quantizer(small, "--dataset", small.kind_calib, "--subset_size", "64")
    assert proc.returncode == 0 and "FP16-INT8 is up to date" in proc.stdout, proc.stdout + proc.stderr
    assert xml.stat().st_mtime_ns == before
    # A changed option is not up to date.
    proc = quantizer(small, "--dataset", small.kind_calib, "--subset_size", "64", "--preset", "mixed")
    assert proc.returncode == 0 and f"wrote {xml}" in proc.stdout, proc.stdout + proc.stderr
    # omz-accuracy-check picks the FP16-INT8 IR up with the others.
    annotation = tmp_path / "eval.txt"
    annotation.write_text("".join(f"{p.name} {label}\n" for p, label in zip(images, fp32)))
    proc = run_cli("omz-accuracy-check", "--name", NAME, "--registry", small.registry, "-d", small.out,
                   "--dataset", tmp_path / "eval", "--annotation", annotation, "--progress_format", "json",
                   "--tolerance", "100")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = events(proc.stdout)[-1]
    assert [r["precision"] for r in summary["results"]] == ["FP32", "FP16", "FP16-INT8"]
    assert summary["results"][0]["metrics"][0]["value"] == 1.0


def test_accuracy_aware_path_with_max_drop(small, tmp_path):
    images = write_images(tmp_path / "val", 24, seed=5)
    labels = reference_scores(small.irs["FP32"], images).argmax(axis=1)
    annotation = tmp_path / "val.txt"
    annotation.write_text("".join(f"{p.name} {label}\n" for p, label in zip(images, labels)))
    out = tmp_path / "out"
    proc = quantizer(small, "--dataset", tmp_path / "val", "--annotation", annotation, "--subset_size", "16",
                     "--max_drop", "0.05", "-o", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nncf.quantize_with_accuracy_control on 16 images" in proc.stdout
    assert fake_quantize_count(out / "public" / NAME / "FP16-INT8" / f"{NAME}.xml") > 0


def test_bad_input_writes_nothing(small, tmp_path):
    out = tmp_path / "out"
    target = out / "public" / NAME / "FP16-INT8"
    proc = quantizer(small, "--dataset", tmp_path / "nowhere", "-o", out)
    one_message(proc, f"dataset folder {tmp_path / 'nowhere'} does not exist")
    bad = tmp_path / "bad"
    shutil.copytree(small.calib, bad)
    (bad / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    proc = quantizer(small, "--dataset", bad, "-o", out)
    one_message(proc, "1 of 81 images cannot be used", "zz_broken.png: not an image OpenCV can decode",
                "Nothing was written")
    annotation = tmp_path / "a.txt"
    annotation.write_text("img_0000.jpg 0\nimg_0001.jpg 0 extra words\n")
    proc = quantizer(small, "--dataset", small.calib, "--annotation", annotation, "-o", out)
    one_message(proc, f"annotation {annotation} line 2", "expected an integer class index")
    annotation.write_text("img_0000.jpg 0\nimg_0001.jpg 12\n")
    proc = quantizer(small, "--dataset", small.calib, "--annotation", annotation, "-o", out)
    one_message(proc, "line 2: class index 12 is out of range")
    proc = quantizer(small, "--dataset", small.calib, "--max_drop", "0.01", "-o", out)
    one_message(proc, "--max_drop needs --annotation")
    assert not target.exists()
    assert not (target.parent.exists() and list(target.parent.glob(".FP16-INT8*")))


def test_a_model_not_marked_quantizable_is_refused(small, tmp_path):
    registry = tmp_path / "registry"
    shutil.copytree(small.registry, registry)
    model_yml = registry / "public" / NAME / "model.yml"
    model_yml.write_text(model_yml.read_text().replace("quantizable: yes\n", ""))
    proc = run_cli("omz-quantizer", "--name", NAME, "--registry", registry, "-d", small.out,
                   "--dataset", small.calib, "-o", tmp_path / "out")
    one_message(proc, f"{NAME} is not marked 'quantizable: yes' in {model_yml}")
    assert not (tmp_path / "out").exists()
