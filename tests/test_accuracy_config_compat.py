"""omz_tools.accuracy.config over openvino-dev 2024.6's own registry (its 249 accuracy-check.yml files):
each one either parses or is refused with one AccuracyConfigError line naming a key of that file,
never another exception; the classification models listed below parse; a composite model's
``evaluations:`` is named as such."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from omz_tools.accuracy.config import AccuracyConfigError, parse

# The classification configs that parse with the opencv reader and OpenCV steps alone...
OPENCV_ONLY = [
    "densenet-121-tf", "googlenet-v1-tf", "googlenet-v2-tf", "googlenet-v3", "googlenet-v4-tf",
    "inception-resnet-v2-tf", "mobilenet-v1-0.25-128", "mobilenet-v1-1.0-224-tf", "mobilenet-v2-1.0-224",
    "mobilenet-v2-1.4-224", "mobilenet-v3-large-1.0-224-tf", "mobilenet-v3-small-1.0-224-tf",
    "open-closed-eye-0001", "resnet-50-tf",
]
# ... and those that name Pillow: the pillow_imread reader ...
PILLOW_READER = [
    "convnext-tiny", "dla-34", "efficientnet-b0-pytorch", "efficientnet-v2-b0", "efficientnet-v2-s",
    "googlenet-v3-pytorch", "levit-128s", "mobilenet-v2-pytorch", "nfnet-f0", "repvgg-a0", "repvgg-b1",
    "repvgg-b3", "resnest-50-pytorch", "resnet-18-pytorch", "resnet-34-pytorch", "resnet-50-pytorch",
    "resnet50-binary-0001", "rexnet-v1-x1.0", "shufflenet-v2-x1.0", "swin-tiny-patch4-window7-224",
    "t2t-vit-14",
]
# ... or only use_pillow steps after OpenCV's reader.
PILLOW_STEPS = ["efficientnet-b0", "hbonet-0.25", "hbonet-1.0", "mixnet-l", "regnetx-3.2gf"]
COMPOSITE = [  # top-level evaluations: (Open Model Zoo runs them with a custom evaluator module)
    "action-recognition-0001", "cocosnet", "driver-action-recognition-adas-0002",
    "formula-recognition-medium-scan-0001", "formula-recognition-polynomials-handwritten-0001",
    "robust-video-matting-mobilenetv3", "text-recognition-0015", "text-recognition-0016", "text-spotting-0005",
    "text-to-speech-en-0001", "text-to-speech-en-multi-0001",
]


def _their_registry() -> Path:
    # Their modules live in the omz_tools folder our package shares (our __init__ extends __path__).
    spec = importlib.util.find_spec("omz_tools.omz_info_dumper")
    if spec is None or spec.origin is None:
        pytest.skip("openvino-dev's omz_tools.omz_info_dumper module is not installed, so neither is its "
                    "registry (pip install openvino-dev==2024.6.0)")
    models = Path(spec.origin).parent / "models"
    if not models.is_dir():
        pytest.skip(f"openvino-dev's registry folder {models} is absent")
    return models


@pytest.fixture(scope="module")
def configs() -> dict:
    """model folder name -> (path, loaded YAML) for every accuracy-check.yml of theirs."""
    found = {}
    for path in sorted(_their_registry().rglob("accuracy-check.yml")):
        found[path.parent.name] = (path, yaml.safe_load(path.read_text(encoding="utf-8")))
    assert len(found) >= 240, f"expected openvino-dev 2024.6's ~249 accuracy-check.yml files, found {len(found)}"
    return found


def _resolve(data, key: str) -> bool:
    """Whether the dotted key of a message (models[1].datasets[0].reader) names something in ``data``."""
    node = data
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", key):
        if index:
            if not isinstance(node, list) or int(index) >= len(node):
                return False
            node = node[int(index)]
        else:
            if not isinstance(node, dict) or name not in node:
                return False
            node = node[name]
    return True


def test_every_file_parses_or_is_refused_in_one_line_naming_a_key(configs):
    for name, (path, data) in configs.items():
        try:
            parse(data, path)
        except AccuracyConfigError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(f"{path}: "), message
            key, _, problem = message[len(f"{path}: "):].partition(": ")
            # The key is in the file, or the message says it is missing.
            assert _resolve(data, key) or "found none" in problem or "found no such key" in problem, message
        # any other exception fails the test with its traceback


@pytest.mark.parametrize("name", OPENCV_ONLY + PILLOW_READER + PILLOW_STEPS)
def test_classification_models_parse(configs, name):
    path, data = configs[name]
    protocol = parse(data, path)
    kinds = [step.kind for step in protocol.steps]
    assert ("read" in kinds) == (name in PILLOW_READER), kinds
    assert kinds.index("read") == 0 if "read" in kinds else True
    uses_pillow = any(step.params.get("library") == "pillow" for step in protocol.steps)
    assert uses_pillow == (name not in OPENCV_ONLY)
    assert protocol.metrics and all(m.reference is not None for m in protocol.metrics)


def test_pillow_configs_keep_their_filters_and_channel_order(configs):
    by_name = {name: parse(*reversed(configs[name])) for name in ("resnet-50-pytorch", "convnext-tiny", "dla-34")}
    resnet = by_name["resnet-50-pytorch"].steps
    assert [s.kind for s in resnet] == ["read", "resize", "crop", "rgb_to_bgr"]
    assert resnet[1].params == {"width": 256, "height": 256, "aspect_ratio_scale": "greater",
                                "interpolation": "BILINEAR", "library": "pillow"}
    assert resnet[2].params == {"width": 224, "height": 224, "library": "pillow"}
    assert by_name["convnext-tiny"].steps[1].params["interpolation"] == "BICUBIC"
    assert [s.kind for s in by_name["dla-34"].steps] == ["read", "rgb_to_bgr", "resize", "crop"]


@pytest.mark.parametrize("name", COMPOSITE)
def test_a_composite_models_evaluations_are_named(configs, name):
    path, data = configs[name]
    assert "evaluations" in data and "models" not in data
    with pytest.raises(AccuracyConfigError) as caught:
        parse(data, path)
    message = str(caught.value)
    assert message.startswith(f"{path}: evaluations: ") and "custom evaluator" in message
    assert "not supported by omz-accuracy-check" in message and "\n" not in message
