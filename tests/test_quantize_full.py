"""omz-quantizer on the full-size SE-ResNet-101: the real prototxt from ../shared, the built-in registry
entry and accuracy-check.yml (with the files' sizes and hashes), converted by the project, quantized
on synthetic images, and compared with FP32 on held-out images.

A network with random weights has no decision margins: its top-1 and top-2 differ by almost nothing,
so any quantization noise flips them (top-1 agreement was 37-40 % with plain random weights). Worse,
a random 101-layer residual net is chaotic: +-2 grey levels of noise changed its pooled features by
half. So the net here is what a trained one is in these two respects, without ImageNet:
  - the backbone is random with weak residual branches (helpers_caffe.make_weights_damped), so it is
    a smooth function of its input;
  - the classifier is fitted (ridge regression, numpy) on the backbone's pooled features of training
    images of KINDS synthetic kinds (colours, grating period and angle, noise; each image varied),
    one kind per chosen output among the 1000, and written into the caffemodel, which is converted
    again. FP32 then classifies held-out images of those kinds with margins, its softmax far from
    one-hot, and INT8 (calibrated on images disjoint from both) must give the same top-1.
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from conftest import SE_RESNET_PROTOTXT
from helpers_accuracy import fit_classifier, image_kinds, needs_opencv, run_cli, write_kind_images
from helpers_caffe import (
    assert_not_saturated, make_weights_damped, parse_prototxt, register_se_resnet, write_caffemodel,
)

NAME = "se-resnet-101"
KINDS = 20
pytestmark = pytest.mark.slow
# This CPU would run FP32 IR in bf16 by default; the reference is the IR in f32.
F32 = {"INFERENCE_PRECISION_HINT": "f32"}


def batch_of(paths) -> np.ndarray:
    """se-resnet-101's protocol through an independent OpenCV pipeline: imread, resize 256x256, crop 224."""
    import cv2
    return np.stack([cv2.resize(cv2.imread(str(p)), (256, 256), interpolation=cv2.INTER_LINEAR)[16:240, 16:240]
                     .transpose(2, 0, 1) for p in paths]).astype(np.float32)


def outputs(xml, paths, config: dict, tensor: str = None) -> np.ndarray:
    """The IR's output (or the named tensor) per image, one synchronous inference each."""
    import openvino as ov
    core = ov.Core()
    model = core.read_model(str(xml))
    if tensor:
        model.add_outputs([tensor])
    compiled = core.compile_model(model, "CPU", config)
    port = compiled.outputs[-1]
    return np.array([compiled(image[None])[port].reshape(-1) for image in batch_of(paths)], dtype=np.float64)


def convert(tmp_path, blobs: dict, out_name: str) -> dict:
    """Write the caffemodel with ``blobs``, register its hash and convert it to FP32 IR under tmp_path/out_name.
    The native Caffe front end: 2 s here against a minute for Model Optimizer, twice (test_caffe_native_full
    checks that its IR of this model matches MO's; test_quantize_small quantizes MO's IR)."""
    import omz_tools
    folder = tmp_path / "dl" / "public" / NAME
    write_caffemodel(folder / f"{NAME}.prototxt", folder / f"{NAME}.caffemodel", blobs=blobs)
    register_se_resnet(folder, tmp_path / "registry", accuracy_check=True)
    irs = omz_tools.convert(NAME, download_dir=tmp_path / "dl", output_dir=tmp_path / out_name,
                            registries=[tmp_path / "registry"], precisions=["FP32"], backend="native")
    (folder / f"{NAME}.caffemodel").unlink()  # 198 MB less on disk
    return irs


def test_full_size_se_resnet_101_quantizes_and_agrees_with_fp32(tmp_path):
    started = time.monotonic()
    needs_opencv()
    pytest.importorskip("nncf", reason="needs NNCF: pip install -e '.[test]'")
    if not SE_RESNET_PROTOTXT.exists():
        pytest.skip(f"needs the real SE-ResNet-101 prototxt at {SE_RESNET_PROTOTXT} (../shared is absent)")
    folder = tmp_path / "dl" / "public" / NAME
    folder.mkdir(parents=True)
    shutil.copyfile(SE_RESNET_PROTOTXT, folder / f"{NAME}.prototxt")
    blobs = make_weights_damped(parse_prototxt(SE_RESNET_PROTOTXT.read_text()), seed=101)
    backbone = convert(tmp_path, blobs, "backbone")["FP32"]

    # The classifier: fitted on the pooled features of 6 training images per kind.
    kinds = image_kinds(KINDS, seed=13)
    train, train_kinds = write_kind_images(tmp_path / "train", kinds, 6, seed=1)
    features = outputs(backbone, train, F32, tensor="pool5/7x7_s1")
    assert features.shape == (len(train), 2048)
    chosen = np.random.default_rng(5).choice(1000, KINDS, replace=False)  # the output of each kind
    blobs["classifier"] = list(fit_classifier(features, train_kinds, chosen, 1000))
    fp32_xml = convert(tmp_path, blobs, "out")["FP32"]

    calib, _ = write_kind_images(tmp_path / "calib", kinds, 2, seed=2)
    proc = run_cli("omz-quantizer", "--name", NAME, "--registry", tmp_path / "registry", "-d", tmp_path / "out",
                   "--dataset", tmp_path / "calib", "--subset_size", str(len(calib)), "--progress_format", "json",
                   timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    end = json.loads(proc.stdout.splitlines()[-1])
    xml = tmp_path / "out" / "public" / NAME / "FP16-INT8" / f"{NAME}.xml"
    assert end["xml"] == str(xml) and end["calibration_images"] == len(calib)
    assert end["fake_quantize"] > 100  # every convolution and the classifier
    import openvino as ov
    ops = ov.Core().read_model(str(xml)).get_ops()
    assert sum(op.get_type_name() == "FakeQuantize" for op in ops) == end["fake_quantize"]
    assert xml.with_suffix(".bin").stat().st_size < 0.55 * fp32_xml.with_suffix(".bin").stat().st_size

    # Held-out images (neither fitted on nor calibrated on): FP32 knows the kinds, with margins.
    held_out, held_kinds = write_kind_images(tmp_path / "eval", kinds, 3, seed=3)
    fp32 = outputs(fp32_xml, held_out, F32)
    assert_not_saturated(fp32)
    accuracy = float(np.mean(fp32.argmax(1) == chosen[held_kinds]))
    assert accuracy >= 0.9, f"FP32 classifies {accuracy:.0%} of {len(held_out)} held-out images right"
    logits = np.log(fp32)
    ranked = np.sort(logits, axis=1)
    margin = float(np.median(ranked[:, -1] - ranked[:, -2]))
    # INT8 as a user runs it (the device's defaults), against FP32 in f32.
    int8 = outputs(xml, held_out, {})
    agreement = float(np.mean(fp32.argmax(1) == int8.argmax(1)))
    print(f"full-size: FP32 accuracy {accuracy:.0%} on {len(held_out)} held-out images, top prob "
          f"{fp32.max():.3f}, median top-1 - top-2 logit margin {margin:.2f}; INT8 top-1 agreement {agreement:.0%}; "
          f"{time.monotonic() - started:.0f} s")
    assert agreement >= 0.9, f"INT8 top-1 agrees with FP32 on {agreement:.0%} of {len(held_out)} held-out images"
