"""Reading a ``.prototxt`` + ``.caffemodel`` into a normalised network: inputs and a layer list.

Both forms of NetParameter are read: ``layer`` (V2, type a string) and ``layers`` (V1, type an
enum, mapped to the V2 names). Layers are kept or dropped by their ``include``/``exclude`` rules
as Caffe does for inference (see ``NetState``). Inputs come from ``input`` with ``input_shape`` or
``input_dim``, or from ``Input`` layers. Structure and parameters come from the prototxt; weights
from the caffemodel layer of the same name (the first one, as Model Optimizer does).

Blobs are renamed per version so that in-place layers (top == bottom) form a plain data-flow
graph: the n-th write of blob ``b`` is version ``(b, n)``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .caffemodel import read_caffemodel
from .errors import CaffeConversionError
from .schema import V1_LAYER_TYPES, schema

Version = Tuple[str, int]

V1_TYPE_NAMES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL", "CONCAT": "Concat",
    "CONVOLUTION": "Convolution", "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SILENCE": "Silence", "SOFTMAX": "Softmax", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "THRESHOLD": "Threshold", "IM2COL": "Im2col", "SOFTMAX_LOSS": "SoftmaxWithLoss",
}
_V1_NUMBER_TO_NAME = {number: V1_TYPE_NAMES.get(name, name) for name, number in V1_LAYER_TYPES.items()}


@dataclass
class Layer:
    name: str
    type: str
    bottoms: List[str]
    tops: List[str]
    proto: Any                      # the prototxt's layer message (its *_param fields)
    inputs: List[Version] = field(default_factory=list)
    outputs: List[Version] = field(default_factory=list)
    blobs: List[np.ndarray] = field(default_factory=list)


@dataclass
class Net:
    name: str
    inputs: Dict[str, List[int]]    # blob name -> shape, in order
    layers: List[Layer]
    proto_path: str = ""
    model_path: str = ""
    notes: List[str] = field(default_factory=list)  # what the user should hear (layers dropped by phase rules)

    def final_version(self, blob: str) -> Optional[Version]:
        last = None
        for layer in self.layers:
            for version in layer.outputs:
                if version[0] == blob:
                    last = version
        if last is None and blob in self.inputs:
            return (blob, 0)
        return last


def parse_prototxt(path: Path):
    """The NetParameter of a prototxt; fields of parameters this front end does not read are skipped."""
    from google.protobuf import text_format

    from omz_tools.convert import bounds
    try:
        text = bounds.read_file(path, f"the Caffe network description {path}", bounds.PROTOTXT_MAX_SIZE).decode("utf-8")
        bounds.check_prototxt_depth(text, path)  # protobuf's text parser recurses once per level
    except bounds.BoundError as exc:
        raise CaffeConversionError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise CaffeConversionError(f"cannot read the Caffe network description {path}: {exc}") from None
    net = schema().NetParameter()
    logger = logging.getLogger("google.protobuf.text_format")
    level = logger.level
    logger.setLevel(logging.ERROR)  # it warns once per skipped field (param { lr_mult } etc.)
    try:
        text_format.Merge(text, net, allow_unknown_field=True)
    except text_format.ParseError as exc:
        raise CaffeConversionError(
            f"cannot parse the Caffe network description {path}: {exc} (expected protobuf text format of "
            f"a Caffe NetParameter; check that the file is a .prototxt and not, e.g., an HTML page)") from None
    except RecursionError:  # only with OMZ_PROTOTXT_MAX_DEPTH raised past what Python's stack allows
        raise CaffeConversionError(
            f"cannot parse the Caffe network description {path}: it nests blocks deeper than protobuf's text "
            f"parser can follow within Python's recursion limit ({bounds.PROTOTXT_MAX_DEPTH.env_var} is "
            f"{bounds.PROTOTXT_MAX_DEPTH.value():,}; about 300 levels parse)") from None
    finally:
        logger.setLevel(level)
    return net


# -- phase rules: the layers Caffe keeps for inference ----------------------------------------------

TRAIN, TEST = 0, 1
_PHASE_NAMES = ("TRAIN", "TEST")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetState:
    """The state a net is built in. Inference is phase TEST, level 0, no stages; a prototxt's
    ``state { ... }`` gives the level and stages, as Caffe's ``Net(NetParameter)`` takes them. Its
    phase is not taken: loading a net for inference, Caffe's ``Net(file, TEST)`` sets phase TEST
    whatever the file says, and so do we (that constructor also sets the level to its own argument,
    0 unless given, and adds its stages to the file's; with no such argument here, a level the file
    sets is taken as meant)."""
    phase: int = TEST
    level: int = 0
    stages: Tuple[str, ...] = ()

    def __str__(self) -> str:
        stages = f"stages {', '.join(map(repr, self.stages))}" if self.stages else "no stages"
        return f"phase {_PHASE_NAMES[self.phase]}, level {self.level}, {stages}"


def net_state(proto, path) -> NetState:
    """The inference state of a NetParameter (see ``NetState``)."""
    if not proto.HasField("state"):
        return NetState()
    state = proto.state
    if state.HasField("phase") and state.phase == TRAIN:
        _log.info("%s: the network's state says phase: TRAIN; converting for inference uses phase TEST, "
                  "as Caffe does when it loads a net for testing or deployment", path)
    return NetState(TEST, int(state.level), tuple(state.stage))


def rule_met(rule, state: NetState) -> bool:
    """Caffe's StateMeetsRule: every condition the NetStateRule sets holds in ``state``."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(stage not in state.stages for stage in rule.stage):
        return False
    return not any(stage in state.stages for stage in rule.not_stage)


def _rule_text(kind: str, rule) -> str:
    from google.protobuf import text_format
    return f"{kind} {{ {text_format.MessageToString(rule, as_one_line=True)} }}"


def _dropped_by(layer, state: NetState, where: str) -> Optional[str]:
    """None if Caffe keeps the layer in ``state``, else why it is dropped (the rule, said in text)."""
    if len(layer.include) and len(layer.exclude):
        raise CaffeConversionError(
            f"{where} has both include and exclude rules; Caffe refuses such a layer (\"Specify either include "
            "rules or exclude rules; not both\"): keep one kind of rule")
    for rule in layer.exclude:
        if rule_met(rule, state):
            return f"its rule {_rule_text('exclude', rule)} is met"
    if not len(layer.include) or any(rule_met(rule, state) for rule in layer.include):
        return None
    rules = " or ".join(_rule_text("include", rule) for rule in layer.include)
    return f"its rule {rules} is not met" if len(layer.include) == 1 else f"none of its rules {rules} is met"


def filter_layers(proto_layers, v1: bool, state: NetState, path) -> Tuple[list, Dict[str, str], List[str]]:
    """(index, layer) of the layers Caffe keeps in ``state`` (Caffe's FilterNet); for each blob a
    dropped layer writes, who wrote it and why it was dropped (for the message of a kept reader);
    and a note naming the dropped layers, if any."""
    kept, dropped, said = [], {}, []
    for index, layer in enumerate(proto_layers):
        name = layer.name or f"layer{index}"
        where = f"layer \"{name}\" ({_layer_type(layer, v1)})"
        reason = _dropped_by(layer, state, f"{path}: {where}")
        if reason is None:
            kept.append((index, layer))
            continue
        said.append(f"{where}: {reason}")
        for top in layer.top:
            dropped.setdefault(top, f"{where} writes, and that layer is dropped because {reason} "
                                    f"(net state: {state})")
    notes = []
    if said:
        notes.append(f"{len(said)} layer(s) dropped for inference by their phase rules, as Caffe does "
                     f"(net state: {state}): {'; '.join(said)}")
        _log.info("%s: %s", path, notes[0])
    return kept, dropped, notes


def _layer_type(layer, v1: bool) -> str:
    if not v1:
        return layer.type
    return _V1_NUMBER_TO_NAME.get(layer.type, f"V1 type {layer.type}")


def read_net(proto_path: Path, model_path: Optional[Path]) -> Net:
    proto = parse_prototxt(proto_path)
    v1 = not len(proto.layer) and len(proto.layers) > 0
    proto_layers = proto.layers if v1 else proto.layer
    if not len(proto_layers):
        raise CaffeConversionError(f"{proto_path}: expected layers (\"layer {{ ... }}\" or the old \"layers\"), "
                                   "found none")
    inputs = _net_inputs(proto, proto_path)
    kept, dropped, notes = filter_layers(proto_layers, v1, net_state(proto, proto_path), proto_path)
    wanted: Dict[str, str] = {}  # only kept layers: the caffemodel's blobs of dropped ones are skipped
    for _, layer in kept:
        wanted.setdefault(layer.name, _layer_type(layer, v1))
    model_blobs = read_caffemodel(model_path, wanted) if model_path is not None else {}
    layers: List[Layer] = []
    for index, layer in kept:
        kind = _layer_type(layer, v1)
        name = layer.name or f"layer{index}"
        if kind == "Input":
            shapes = list(layer.input_param.shape)
            if not shapes:
                raise CaffeConversionError(f"{proto_path}: Input layer \"{name}\" has no input_param shape")
            for i, top in enumerate(layer.top):
                inputs[top] = [int(d) for d in shapes[min(i, len(shapes) - 1)].dim]
            continue
        item = Layer(name=name, type=kind, bottoms=list(layer.bottom), tops=list(layer.top), proto=layer)
        item.blobs = list(model_blobs.get(layer.name, ()))
        layers.append(item)
    del model_blobs
    if not inputs:
        raise CaffeConversionError(f"{proto_path}: the network has no inputs (expected an \"Input\" layer or "
                                   "\"input\" with \"input_shape\"/\"input_dim\")")
    for name, shape in inputs.items():
        if any(d < 0 for d in shape):
            raise CaffeConversionError(f"{proto_path}: input \"{name}\" has shape {shape}: a Caffe blob's dimensions "
                                       "are 0 or more: give the input's real size")
    net = Net(name=proto.name, inputs=inputs, layers=layers, proto_path=str(proto_path),
              model_path=os.fspath(model_path) if model_path is not None else "", notes=notes)
    _assign_versions(net, dropped)
    return net


def _net_inputs(proto, path) -> Dict[str, List[int]]:
    names = list(proto.input)
    if not names:
        return {}
    if len(proto.input_shape):
        shapes = [[int(d) for d in s.dim] for s in proto.input_shape]
    elif len(proto.input_dim):
        dims = [int(d) for d in proto.input_dim]
        if len(dims) % len(names):
            raise CaffeConversionError(f"{path}: {len(dims)} input_dim values for {len(names)} inputs; expected "
                                       "the same number of dimensions for each input")
        step = len(dims) // len(names)
        shapes = [dims[i * step:(i + 1) * step] for i in range(len(names))]
    else:
        raise CaffeConversionError(f"{path}: input {names[0]!r} has no shape (expected input_shape or input_dim)")
    if len(shapes) != len(names):
        raise CaffeConversionError(f"{path}: {len(names)} inputs but {len(shapes)} input shapes")
    return dict(zip(names, shapes))


def _assign_versions(net: Net, dropped: Dict[str, str]) -> None:
    current: Dict[str, int] = {name: 0 for name in net.inputs}
    for layer in net.layers:
        for bottom in layer.bottoms:
            if bottom not in current and bottom in dropped:
                raise CaffeConversionError(
                    f"{net.proto_path}: layer \"{layer.name}\" ({layer.type}) reads blob \"{bottom}\", which only "
                    f"{dropped[bottom]}. Caffe refuses this network for inference too: give that blob a producer "
                    "kept in phase TEST (an Input layer or input/input_shape), or change the rules")
            if bottom not in current:
                raise CaffeConversionError(
                    f"{net.proto_path}: layer \"{layer.name}\" ({layer.type}) reads blob \"{bottom}\", which no "
                    "earlier layer or input produces")
            layer.inputs.append((bottom, current[bottom]))
        for top in layer.tops:
            current[top] = current[top] + 1 if top in current else 0
            layer.outputs.append((top, current[top]))
