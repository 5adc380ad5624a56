"""The native Caffe front end keeps the layers Caffe keeps for inference: ``include``/``exclude``
rules (NetStateRule: phase, min_level/max_level, stage/not_stage) judged in the state phase TEST,
level 0, no stages, or the level and stages of the prototxt's ``state``. Each net is converted and
compared with the numpy reference of the net written without its dropped layers."""

from __future__ import annotations

import logging
import zlib

import numpy as np
import pytest

from helpers_caffe import assert_not_saturated, image_like, make_weights, parse_prototxt, reference, write_caffemodel
from omz_tools.convert import caffe
from omz_tools.convert.caffe.reader import read_net
from test_caffe_native_layers import _layer, assert_close, infer

# Needs no Model Optimizer: CI runs these again beside the newest openvino and numpy 2.
pytestmark = pytest.mark.native
ov = pytest.importorskip("openvino")

SHAPE = (1, 8, 12, 12)
TRAIN, TEST = "include { phase: TRAIN }", "include { phase: TEST }"
CONV = "convolution_param { num_output: 8 kernel_size: 3 pad: 1 }"
FC = "inner_product_param { num_output: 10 }"

# (layer text, kept by Caffe for inference). A train_val-like net: a TEST Input and a TRAIN Data
# layer both writing "data", a train-only Dropout, a TEST-only and a TRAIN-only Power (a dropped
# layer of a supported type, so keeping it would change the numbers), a ReLU excluded from TEST, a
# train-only InnerProduct whose blobs the caffemodel holds, and the TRAIN Accuracy/SoftmaxWithLoss.
V2_LAYERS = [
    (_layer("data", "Input", [], ["data"], "input_param { shape { dim: 1 dim: 8 dim: 12 dim: 12 } } " + TEST), True),
    (_layer("train_data", "Data", [], ["data", "label"],
            "data_param { source: \"train_lmdb\" batch_size: 32 } transform_param { mirror: true } " + TRAIN), False),
    (_layer("c1", "Convolution", ["data"], ["c1"], "param { lr_mult: 1 } " + CONV), True),
    (_layer("drop", "Dropout", ["c1"], ["c1"], "dropout_param { dropout_ratio: 0.5 } " + TRAIN), False),
    (_layer("test_power", "Power", ["c1"], ["c1"], "power_param { scale: 0.5 shift: 0.2 } " + TEST), True),
    (_layer("train_power", "Power", ["c1"], ["c1"], "power_param { scale: 4 shift: 1 } " + TRAIN), False),
    (_layer("train_relu", "ReLU", ["c1"], ["c1"], "exclude { phase: TEST }"), False),
    (_layer("fc", "InnerProduct", ["c1"], ["fc"], FC), True),
    (_layer("fc_train", "InnerProduct", ["c1"], ["fc_train"], "inner_product_param { num_output: 5 } " + TRAIN), False),
    (_layer("prob", "Softmax", ["fc"], ["prob"]), True),
    (_layer("accuracy", "Accuracy", ["fc", "label"], ["accuracy"], TRAIN), False),
    (_layer("loss", "SoftmaxWithLoss", ["fc", "label"], ["loss"], TRAIN), False),
]


def _v1(name, kind, bottoms, tops, params=""):
    b = "".join(f' bottom: "{x}"' for x in bottoms)
    t = "".join(f' top: "{x}"' for x in tops)
    return f'layers {{ name: "{name}" type: {kind}{b}{t} {params} }}\n'


V1_HEAD = 'input: "data"\n' + "".join(f"input_dim: {d}\n" for d in SHAPE)
V1_LAYERS = [
    (_v1("train_data", "DATA", [], ["data", "label"], TRAIN), False),
    (_v1("c1", "CONVOLUTION", ["data"], ["c1"], CONV), True),
    (_v1("drop", "DROPOUT", ["c1"], ["c1"], TRAIN), False),
    (_v1("test_power", "POWER", ["c1"], ["c1"], "power_param { scale: 0.5 shift: 0.2 } " + TEST), True),
    (_v1("train_power", "POWER", ["c1"], ["c1"], "power_param { scale: 4 shift: 1 } " + TRAIN), False),
    (_v1("train_relu", "RELU", ["c1"], ["c1"], "exclude { phase: TEST }"), False),
    (_v1("fc", "INNER_PRODUCT", ["c1"], ["fc"], FC), True),
    (_v1("prob", "SOFTMAX", ["fc"], ["prob"]), True),
    (_v1("accuracy", "ACCURACY", ["fc", "label"], ["accuracy"], TRAIN), False),
    (_v1("loss", "SOFTMAX_LOSS", ["fc", "label"], ["loss"], TRAIN), False),
]


def _write(folder, name, head, layers, *, extra_blobs=None):
    """The full prototxt, and a caffemodel of it whose weights are drawn for the kept net (plus
    ``extra_blobs`` for dropped layers). Returns (prototxt, caffemodel, the kept net's text)."""
    full = f'name: "{name}"\n' + head + "".join(text for text, _ in layers)
    kept = f'name: "{name}"\n' + head + "".join(text for text, keep in layers if keep)
    blobs = make_weights(parse_prototxt(kept), zlib.crc32(name.encode()))
    blobs.update(extra_blobs or {})
    proto = folder / f"{name}.prototxt"
    proto.write_text(full)
    return proto, write_caffemodel(proto, folder / f"{name}.caffemodel", blobs=blobs), kept


def _check_numbers(model, kept_text, proto, caffemodel):
    """The IR's outputs against the numpy reference of the net as Caffe keeps it."""
    assert [output.get_any_name() for output in model.outputs] == ["prob"]
    assert list(model.input(0).get_partial_shape().to_shape()) == list(SHAPE)
    blobs = {layer.name: layer.blobs for layer in read_net(proto, caffemodel).layers if layer.blobs}
    for seed in (1, 2):
        x = image_like(SHAPE, seed=seed) / 64.0
        want = reference(parse_prototxt(kept_text), blobs, {"data": x.astype(np.float64)})["prob"]
        assert_not_saturated(want)
        assert_close(infer(model, x), want)


@pytest.mark.parametrize("form", ["V2", "V1"])
def test_train_only_layers_are_dropped_and_test_only_layers_kept(form, tmp_path, caplog):
    head, layers = ("", V2_LAYERS) if form == "V2" else (V1_HEAD, V1_LAYERS)
    # Blobs of a dropped layer in the caffemodel (of a shape nothing kept could use): never read.
    extra = {"fc_train": [np.ones((5, 3)), np.ones(5)]} if form == "V2" else {}
    proto, caffemodel, kept = _write(tmp_path, f"phase-{form}", head, layers, extra_blobs=extra)
    notes: list = []  # what omz-converter prints beside its native phase
    with caplog.at_level(logging.INFO, logger="omz_tools.convert.caffe"):
        model = caffe.convert([f"--input_model={caffemodel}", f"--input_proto={proto}", "--input=data"], notes)
    _check_numbers(model, kept, proto, caffemodel)
    said = [r.getMessage() for r in caplog.records if "dropped for inference" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert said == [f"{proto}: {notes[0]}"] and len(notes) == 1, notes
    dropped = [text.split('name: "')[1].split('"')[0] for text, keep in layers if not keep]
    assert f"{len(dropped)} layer(s) dropped" in said[0] and "phase TEST, level 0, no stages" in said[0]
    for name in dropped:
        assert f'layer "{name}"' in said[0]
    assert 'layer "train_data" (Data): its rule include { phase: TRAIN } is not met' in said[0]
    assert 'layer "train_relu" (ReLU): its rule exclude { phase: TEST } is met' in said[0]


# name -> (rules, kept in the default state, kept in CUSTOM_STATE). Every layer is a Power with a
# scale and shift of its own, so a wrong decision changes the output.
RULES = {
    "no_rule": ("", True, True),
    "test": ("include { phase: TEST }", True, True),
    "train": ("include { phase: TRAIN }", False, False),
    "min1": ("include { min_level: 1 }", False, True),
    "max1": ("include { max_level: 1 }", True, False),
    "level2": ("include { min_level: 2 max_level: 2 }", False, True),
    "deploy": ('include { stage: "deploy" }', False, True),
    "deploy_int8": ('include { stage: "deploy" stage: "int8" }', False, True),
    "deploy_other": ('include { stage: "deploy" stage: "other" }', False, False),
    "not_deploy": ('include { not_stage: "deploy" }', True, False),
    "test_not_int8": ('include { phase: TEST not_stage: "int8" }', True, False),
    "either": ('include { stage: "deploy" } include { phase: TEST max_level: 0 }', True, True),
    "excl_train": ("exclude { phase: TRAIN }", True, True),
    "excl_test": ("exclude { phase: TEST }", False, False),
    "excl_deploy": ('exclude { stage: "deploy" }', True, False),
    "excl_min1": ("exclude { min_level: 1 }", True, False),
    "excl_either": ('exclude { stage: "other" } exclude { max_level: 0 }', False, True),
}
# The state's phase TRAIN is not taken: a net is loaded for inference in phase TEST, as Caffe's
# Net(..., TEST) does; its level and stages apply.
CUSTOM_STATE = 'state { phase: TRAIN level: 2 stage: "deploy" stage: "int8" }\n'


def _rules_net(custom: bool):
    layers = [(_layer("c1", "Convolution", ["data"], ["c1"], CONV), True)]
    for i, (name, (rules, default_kept, custom_kept)) in enumerate(RULES.items()):
        power = f"power_param {{ scale: {1.1 + 0.05 * i:.2f} shift: {0.1 * (i % 3 - 1):.1f} }}"
        kept = custom_kept if custom else default_kept
        layers.append((_layer(name, "Power", ["c1"], ["c1"], f"{power} {rules}"), kept))
    layers += [(_layer("fc", "InnerProduct", ["c1"], ["fc"], FC), True),
               (_layer("prob", "Softmax", ["fc"], ["prob"]), True)]
    head = (CUSTOM_STATE if custom else "") + 'input: "data"\n' + "input_shape { %s }\n" % " ".join(
        f"dim: {d}" for d in SHAPE)
    return head, layers


@pytest.mark.parametrize("custom", [False, True], ids=["default-state", "state-level2-deploy-int8"])
def test_stage_and_level_rules(custom, tmp_path):
    head, layers = _rules_net(custom)
    proto, caffemodel, kept = _write(tmp_path, "rules", head, layers)
    want = ["c1"] + [name for name, (_, default_kept, custom_kept) in RULES.items()
                     if (custom_kept if custom else default_kept)] + ["fc", "prob"]
    assert [layer.name for layer in read_net(proto, None).layers] == want
    model = caffe.convert([f"--input_model={caffemodel}", f"--input_proto={proto}"])
    _check_numbers(model, kept, proto, caffemodel)


def test_reading_a_blob_only_a_dropped_layer_writes_is_one_message(tmp_path):
    layers = [(_layer("data", "Input", [], ["data"], "input_param { shape { dim: 1 dim: 8 dim: 12 dim: 12 } }"), True),
              (_layer("labels", "Data", [], ["label"], TRAIN), False),
              (_layer("c1", "Convolution", ["data"], ["c1"], CONV), True),
              (_layer("mix", "Eltwise", ["c1", "label"], ["mix"]), True)]
    proto = tmp_path / "net.prototxt"
    proto.write_text('name: "dangling"\n' + "".join(text for text, _ in layers))
    caffemodel = write_caffemodel(proto, tmp_path / "net.caffemodel", blobs={})
    with pytest.raises(caffe.CaffeConversionError) as info:
        caffe.convert([f"--input_proto={proto}", f"--input_model={caffemodel}"])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f'{proto}: layer "mix" (Eltwise) reads blob "label", which only layer "labels" (Data) '
                              "writes, and that layer is dropped because its rule include { phase: TRAIN } is not met "
                              "(net state: phase TEST, level 0, no stages)"), message


@pytest.mark.parametrize("form", ["V2", "V1"])
def test_include_and_exclude_on_one_layer_is_one_message(form, tmp_path):
    rules = 'include { phase: TEST } exclude { stage: "x" }'
    if form == "V2":
        text = ('input: "data"\ninput_shape { dim: 1 dim: 8 dim: 12 dim: 12 }\n'
                + _layer("both", "Power", ["data"], ["p"], rules))
    else:
        text = V1_HEAD + _v1("both", "POWER", ["data"], ["p"], rules)
    proto = tmp_path / "net.prototxt"
    proto.write_text(text)
    with pytest.raises(caffe.CaffeConversionError) as info:
        read_net(proto, None)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f'{proto}: layer "both" (Power) has both include and exclude rules; Caffe refuses '
                              "such a layer"), message
