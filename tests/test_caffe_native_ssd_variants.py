"""SSD variants beyond the zoo's heads, against Model Optimizer 2024.6 (one MO run): PriorBox with
``fixed_size`` and ``density``, DetectionOutput with ``share_location: false`` (a box per class), and
DetectionOutput with five bottoms (a RefineDet-style ARM: objectness confidences and anchor
refinements). Priors are compared elementwise, detections as sets (same count, labels, boxes and
scores within 1e-4) on heads whose scores are spread with several boxes above the threshold.
"""

from __future__ import annotations

import numpy as np
import pytest

import helpers_caffe_ssd as ssd
from helpers_caffe import parse_prototxt, write_caffemodel
from omz_tools.convert import caffe
from test_caffe_native_layers import run_mo

ov = pytest.importorskip("openvino")

F32 = {"INFERENCE_PRECISION_HINT": "f32"}
PRIORS = 5  # per location: fixed_size 8 with density 2 (4 boxes), fixed_size 16 with density 1
CLASSES = 3
THRESHOLD = 0.2
L = ssd.layer


def _conv(name, bottom, out, kernel=3, stride=1):
    return L(name, "Convolution", [bottom], [name], "convolution_param { num_output: %d kernel_size: %d stride: %d "
             "pad: %d }" % (out, kernel, stride, kernel // 2))


def _flat(name, bottom, softmax_width=0):
    """Caffe's head plumbing: NCHW -> NHWC, flattened; a confidence head through a softmax per box."""
    text = L(f"{name}_perm", "Permute", [bottom], [f"{name}_perm"], "permute_param { order: 0 order: 2 order: 3 "
             "order: 1 }")
    if not softmax_width:
        return text + L(f"{name}_flat", "Flatten", [f"{name}_perm"], [f"{name}_flat"], "flatten_param { axis: 1 }")
    return text + L(f"{name}_resh", "Reshape", [f"{name}_perm"], [f"{name}_resh"],
                    "reshape_param { shape { dim: 0 dim: -1 dim: %d } }" % softmax_width) + \
        L(f"{name}_soft", "Softmax", [f"{name}_resh"], [f"{name}_soft"], "softmax_param { axis: 2 }") + \
        L(f"{name}_flat", "Flatten", [f"{name}_soft"], [f"{name}_flat"], "flatten_param { axis: 1 }")


def _detection(name, bottoms, share: bool, extra=""):
    return L(name, "DetectionOutput", bottoms, [name], "detection_output_param { num_classes: %d share_location: %s "
             "background_label_id: 0 nms_param { nms_threshold: 0.45 top_k: 100 } code_type: CENTER_SIZE "
             "keep_top_k: 50 confidence_threshold: %g %s }" % (CLASSES, str(share).lower(), THRESHOLD, extra))


HEADS = ('name: "variants"\ninput: "data"\ninput_shape { dim: 1 dim: 3 dim: 32 dim: 32 }\n'
         + _conv("c1", "data", 8, stride=4)
         + _conv("mbox_loc", "c1", PRIORS * 4 * CLASSES) + _flat("loc", "mbox_loc")
         + _conv("mbox_conf", "c1", PRIORS * CLASSES) + _flat("conf", "mbox_conf", CLASSES)
         + _conv("mbox_loc_shared", "c1", PRIORS * 4) + _flat("loc1", "mbox_loc_shared")
         + _conv("arm_mbox_conf", "c1", PRIORS * 2) + _flat("arm_conf", "arm_mbox_conf", 2)
         + _conv("arm_mbox_loc", "c1", PRIORS * 4) + _flat("arm_loc", "arm_mbox_loc"))
NET = (HEADS + L("priors", "PriorBox", ["c1", "data"], ["priors"], "prior_box_param { fixed_size: 8 fixed_size: 16 "
                 "density: 2 density: 1 variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 step: 4 clip: false }")
       + _detection("det_per_class", ["loc_flat", "conf_flat", "priors"], False)
       + _detection("det_arm", ["loc1_flat", "conf_flat", "priors", "arm_conf_flat", "arm_loc_flat"], True,
                    "objectness_score: 0.3"))
OUTPUTS = ["priors", "det_per_class", "det_arm"]


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants")
    inputs = ssd.preprocessed(parse_prototxt(HEADS), 5, 127.5, 127.5)
    # the heads' weights scaled on the heads alone (the numpy references know neither variant)
    blobs = ssd.ssd_weights(parse_prototxt(HEADS), 1, inputs, conf_std=1.0, loc_std=0.5)
    proto = folder / "variants.prototxt"
    proto.write_text(NET, encoding="utf-8")
    model = write_caffemodel(proto, folder / "variants.caffemodel", blobs=blobs)
    args = [f"--input_model={model}", f"--input_proto={proto}", f"--output={','.join(OUTPUTS)}"]
    return args, inputs["data"].astype(np.float32), folder


def _run(model, x) -> dict:
    compiled = ov.Core().compile_model(model, "CPU", F32)
    result = compiled({"data": x})
    return {name: np.asarray(result[out], np.float64) for out in compiled.outputs for name in out.get_names()}


def test_ssd_variants_match_model_optimizer(variants):
    args, x, folder = variants
    native = caffe.convert(args)
    mo_model = ov.Core().read_model(str(run_mo(folder, args, folder / "cache")))
    assert [o.get_names() for o in native.outputs] == [o.get_names() for o in mo_model.outputs]
    got, want = _run(native, x), _run(mo_model, x)
    assert want["priors"].shape == (1, 2, 8 * 8 * PRIORS * 4)
    diff = float(np.abs(got["priors"] - want["priors"]).max())
    print(f"priors: max abs difference {diff:.3g}")
    assert diff <= 1e-6
    for name in ("det_per_class", "det_arm"):
        ssd.assert_scores_spread(want[name], THRESHOLD)
        worst = ssd.assert_same_detections(got[name], want[name])
        print(f"{name}: {len(ssd.detections(want[name]))} detections match; largest difference {worst:.3g}")
