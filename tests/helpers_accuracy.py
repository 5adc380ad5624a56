"""Fixtures for the accuracy-check and quantizer tests: a small SE-ResNet (random, well-scaled weights)
in a test registry with an accuracy-check.yml, converted to IR by the project's converter, and
synthetic images written with OpenCV.

The small net takes 64x64 inputs and has 10 classes; its protocol resizes to 72x72 and center-crops
64x64 (the mean is baked into the IR as for se-resnet-101). Its class order is ten made-up ids.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import command
from helpers_caffe import (
    SMALL_CLASSES, SMALL_INPUT_SHAPE, file_digest, make_weights, parse_prototxt, small_se_resnet_prototxt,
    write_caffemodel, write_model_yml,
)

NAME = "small-se-resnet"
KIND_SIZE = 80  # kind images for the small net: resized to 72 and cropped to 64 by its protocol
CLASS_IDS = [f"n{9000000 + i:08d}" for i in range(SMALL_CLASSES)]
RESIZE, CROP = 72, 64


def class_order_sha256(ids) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def accuracy_check_yml(*, top1: float = 0.7, top5: float = 0.95, extra_steps: str = "", metrics: str = None) -> str:
    metrics = metrics if metrics is not None else f"""\
          - name: accuracy@top1
            type: accuracy
            top_k: 1
            reference: {top1}
          - name: accuracy@top5
            type: accuracy
            top_k: 5
            reference: {top5}
"""
    return f"""\
models:
  - name: {NAME}-cf
    launchers:
      - framework: caffe
        adapter: classification
    datasets:
      - name: test_classes
        preprocessing:
          - type: resize
            size: {RESIZE}
  - name: {NAME}
    launchers:
      - framework: dlsdk
        adapter: classification
    datasets:
      - name: test_classes
        preprocessing:
          - type: resize
            size: {RESIZE}
          - type: crop
            size: {CROP}
{extra_steps}        metrics:
{metrics}        class_order:
          name: test_classes
          count: {SMALL_CLASSES}
          first: {CLASS_IDS[0]} class zero
          sha256: {class_order_sha256(CLASS_IDS)}
"""


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMZ_REGISTRY", "OMZ_MIRROR", "OMZ_OFFLINE")}
    env["CI"] = "true"
    return env


def build_small(root: Path, *, quantizable: bool = True, kinds: list = None) -> SimpleNamespace:
    """Registry + downloaded files + FP32/FP16 IR of the small net under ``root``. ``kinds`` (one per
    class, from image_kinds): the classifier is then fitted on the pooled features of 8 training
    images per kind (written under root/train) and the net converted again, so that class k means
    kind k with a margin (``fit_classifier``); random weights alone give near-ties, and one class
    winning on most images."""
    import shutil

    import omz_tools
    registry, dl, out = root / "registry", root / "dl", root / "out"
    folder = dl / "public" / NAME
    folder.mkdir(parents=True)
    prototxt = folder / f"{NAME}.prototxt"
    prototxt.write_text(small_se_resnet_prototxt())
    blobs = make_weights(parse_prototxt(prototxt.read_text()), 7)

    def convert() -> dict:
        write_caffemodel(prototxt, folder / f"{NAME}.caffemodel", blobs=blobs)
        # The files are placed where omz-downloader would put them; the converter hashes them against
        # the registry entry before use (no server needed: downloading is tested elsewhere).
        files = [(f, *file_digest(folder / f), f"https://example.com/{f}")
                 for f in (f"{NAME}.prototxt", f"{NAME}.caffemodel")]
        write_model_yml(registry, NAME, files, input_shape=SMALL_INPUT_SHAPE, outputs={"prob": [1, SMALL_CLASSES]},
                        top_extra="quantizable: yes\n" if quantizable else "")
        (registry / "public" / NAME / "accuracy-check.yml").write_text(accuracy_check_yml())
        return omz_tools.convert(NAME, download_dir=dl, output_dir=out, registries=[registry])

    irs = convert()
    if kinds is not None:
        assert len(kinds) == SMALL_CLASSES
        train, labels = write_kind_images(root / "train", kinds, 8, seed=1, size=KIND_SIZE)
        features = reference_scores(irs["FP32"], train, tensor="pool5")
        blobs["classifier"] = list(fit_classifier(features, labels, np.arange(SMALL_CLASSES), SMALL_CLASSES,
                                                  target=1.2))
        shutil.rmtree(out)
        irs = convert()
    return SimpleNamespace(root=root, registry=registry, dl=dl, out=out, irs=irs,
                           config=registry / "public" / NAME / "accuracy-check.yml")


def write_images(folder: Path, count: int, *, ext: str = ".jpg", size=(96, 80), seed: int = 0) -> list:
    """``count`` synthetic photos-ish images (smooth colour blobs plus noise), width x height ``size``."""
    import cv2
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    paths = []
    for i in range(count):
        coarse = rng.uniform(0, 255, (rng.integers(2, 7), rng.integers(2, 7), 3)).astype(np.float32)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        image += rng.normal(0, 12, image.shape).astype(np.float32)
        path = folder / f"img_{i:04d}{ext}"
        assert cv2.imwrite(str(path), np.clip(image, 0, 255).astype(np.uint8))
        paths.append(path)
    return paths


def write_noise_images(folder: Path, count: int, *, size: int = 256, seed: int = 0) -> list:
    """``count`` lossless PNGs of uniform noise 0..255, ``size`` x ``size``. With se-resnet-101's protocol
    (resize to 256: a copy; center crop 224) the IR sees the kind of input helpers_caffe scales the
    weights for, so its softmax is not saturated and a top-1 comparison means something; smooth
    images drive a random 101-layer net far from those statistics, to one-hot outputs."""
    import cv2
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"noise_{i:04d}.png"
        assert cv2.imwrite(str(path), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def reference_scores(xml: Path, paths: list, tensor: str = None) -> np.ndarray:
    """The IR's output (or the named tensor) for each image through an independent OpenCV pipeline
    (imread, resize, crop)."""
    import cv2
    import openvino as ov
    core = ov.Core()
    model = core.read_model(str(xml))
    if tensor:
        model.add_outputs([tensor])
    compiled = core.compile_model(model, "CPU")
    port = compiled.outputs[-1]
    scores = []
    for path in paths:
        image = cv2.resize(cv2.imread(str(path), cv2.IMREAD_COLOR), (RESIZE, RESIZE), interpolation=cv2.INTER_LINEAR)
        offset = (RESIZE - CROP) // 2
        crop = image[offset:offset + CROP, offset:offset + CROP]
        scores.append(compiled(crop.transpose(2, 0, 1)[None].astype(np.float32))[port].reshape(-1))
    return np.array(scores)


def run_cli(name: str, *args, env=None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([command(name), *map(str, args)], capture_output=True, text=True,
                          env=env or clean_env(), timeout=timeout)


def needs_opencv():
    try:
        import cv2  # noqa: F401
    except ImportError:
        pytest.skip("needs OpenCV: pip install -e '.[test]' (opencv-python-headless)")


def image_kinds(count: int, seed: int = 0) -> list:
    """``count`` visually distinct kinds of image: two BGR colours blended by a sine grating of a
    period (4-64 px) and an orientation of their own, plus noise of a strength of their own."""
    rng = np.random.default_rng(seed)
    return [dict(colours=rng.uniform(20, 235, (2, 3)), period=float(np.exp(rng.uniform(np.log(4), np.log(64)))),
                 angle=float(rng.uniform(0, np.pi)), noise=float(rng.uniform(10, 60))) for _ in range(count)]


def kind_image(kind: dict, rng, size: int = 256) -> np.ndarray:
    """One image of ``kind`` with its own variation: colours, period, angle, phase and noise jittered."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    angle = kind["angle"] + rng.normal(0, 0.08)
    period = kind["period"] * np.exp(rng.normal(0, 0.08))
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + rng.uniform(0, 2 * np.pi))
    first, second = kind["colours"] + rng.normal(0, 12, (2, 3))
    image = first * wave[..., None] + second * (1 - wave[..., None])
    image += rng.normal(0, kind["noise"] * np.exp(rng.normal(0, 0.2)), image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_kind_images(folder: Path, kinds: list, per_kind: int, *, seed: int, size: int = 256) -> tuple:
    """``per_kind`` lossless PNGs (``size`` square) of each kind; returns (paths, kind index of each)."""
    import cv2
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for i in range(per_kind):
        for k, kind in enumerate(kinds):
            path = folder / f"kind{k:02d}_{i:03d}.png"
            assert cv2.imwrite(str(path), kind_image(kind, rng, size))
            paths.append(path)
            labels.append(k)
    return paths, np.array(labels)


def fit_classifier(features: np.ndarray, labels: np.ndarray, outputs: np.ndarray, classes: int, *,
                   target: float = 6.0, ridge: float = 0.01, others_std: float = 0.5, seed: int = 0) -> tuple:
    """An InnerProduct head (weights classes x features, bias) fitted by ridge regression so that
    output ``outputs[k]`` scores images of kind ``k``: centred one-hot targets of height ``target``
    on standardised features. The other outputs get random weights whose logits have std
    ``others_std`` on these features: a softmax over all of them that is far from one-hot while
    the fitted outputs lead by a margin of several logits."""
    features = np.asarray(features, dtype=np.float64)
    n, dim = features.shape
    mu, sd = features.mean(0), features.std(0) + 1e-6
    x = (features - mu) / sd
    y = np.zeros((n, len(outputs)))
    y[np.arange(n), labels] = target
    y -= y.mean(0)
    a = np.linalg.solve(x.T @ x + ridge * n * np.eye(dim), x.T @ y)  # dim x kinds, standardised features
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((classes, dim)) / np.sqrt(dim)
    weights *= others_std / max(float((features @ weights.T).std()), 1e-12)
    bias = -(features @ weights.T).mean(0)
    weights[outputs] = (a / sd[:, None]).T
    bias[outputs] = -(mu / sd) @ a
    return weights, bias
