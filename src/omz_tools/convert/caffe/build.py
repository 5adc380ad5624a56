"""From a normalised Caffe network and the MO options to an ``openvino.Model``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List


from omz_tools.convert.bounds import oversized_output, oversized_tensor

from . import mo_args
from .errors import CaffeConversionError, UnsupportedLayerError
from .fold import fold
from .layers import INTERNAL, SUPPORTED_LAYER_TYPES, TRANSLATORS, Context, as_output
from .names import default_outputs, requested_outputs, tensor_names, user_name
from .opset import Model, Type, ops
from .preprocess import preprocess
from .reader import Net, Version
from .strides import optimize_strides, subsampled


def _output_versions(net: Net, names: List[str]) -> Dict[Version, str]:
    """version -> output tensor name. Named outputs are layers (their first top) or blobs (the last
    write); by default every blob that no layer reads, as Model Optimizer does."""
    result: Dict[Version, str] = {}
    if names:
        by_layer = {layer.name: layer for layer in net.layers}
        for name in names:
            version = _named_version(net, by_layer, name)
            result[version] = version[0]
        return result
    read = {v for layer in net.layers for v in layer.inputs}
    for layer in net.layers:  # an in-place last layer's top is an output too (its blob is read, by itself)
        for version in layer.outputs:
            if version not in read:
                result[version] = version[0]
    return result


def _named_version(net: Net, by_layer: dict, name: str) -> Version:
    """--output's forms: a layer (its first top), a blob (its last write), 'layer:N' (top N), 'N:layer' (bottom N)."""
    if name in by_layer and by_layer[name].outputs:
        return by_layer[name].outputs[0]
    version = net.final_version(name)
    if version is not None:
        return version
    match = re.fullmatch(r"(.+):(\d+)|(\d+):(.+)", name)
    if match:
        out = match.group(1) is not None
        layer, port = by_layer.get(match.group(1) if out else match.group(4)), int(match.group(2) or match.group(3))
        ports = (layer.outputs if out else layer.inputs) if layer is not None else []
        if port < len(ports):
            return ports[port]
        if layer is not None:
            raise CaffeConversionError(f"--output={name}: layer {layer.name!r} has {len(ports)} "
                                       f"{'top' if out else 'bottom'}(s), so no {'output' if out else 'input'} "
                                       f"port {port}")
    raise CaffeConversionError(f"--output={name}: the network has no layer or blob named {name!r}")


def _needed(net: Net, outputs) -> List:
    """The layers the outputs depend on, in network order."""
    wanted = set(outputs)
    keep = []
    for layer in reversed(net.layers):
        if wanted.intersection(layer.outputs):
            keep.append(layer)
            wanted.update(layer.inputs)
    return list(reversed(keep))


def _refuse_unsupported(net: Net) -> None:
    unsupported = [layer for layer in net.layers if layer.type not in TRANSLATORS]
    if unsupported:
        first = unsupported[0]
        others = f" ({len(unsupported) - 1} more unsupported layer(s): " + ", ".join(
            sorted({layer.type for layer in unsupported[1:]})) + ")" if len(unsupported) > 1 else ""
        raise UnsupportedLayerError(
            f"layer \"{first.name}\" has type \"{first.type}\", which the native Caffe front end does not convert"
            f"{others}. Supported types: {', '.join(sorted(SUPPORTED_LAYER_TYPES))}. Model Optimizer may convert it: "
            "run the converter with --backend mo.")


def _parameters(shapes: dict, values: dict) -> list:
    """One Parameter per input; its output goes into ``values`` (preprocessing comes last, on the model)."""
    params = []
    for name, shape in shapes.items():
        param = ops.parameter(shape, Type.f32, name=name)
        param.output(0).get_tensor().set_names({name})
        params.append(param)
        values[(name, 0)] = param.output(0)
    return params


def _translate(ctx: Context, layer, values: dict) -> None:
    """The layer's OpenVINO outputs into ``values``; a failure names the layer."""
    translate = TRANSLATORS.get(layer.type) or INTERNAL[layer.type]
    inputs = subsampled(layer, [values[v] for v in layer.inputs], ops)
    try:
        produced = [as_output(value) for value in translate(ctx, layer, inputs)]
    except CaffeConversionError as exc:
        if str(exc).startswith(f"layer \"{layer.name}\""):
            raise
        raise CaffeConversionError(f"layer \"{layer.name}\" ({layer.type}): {exc}") from None
    except IndexError:  # a translator reads a bottom the layer does not have
        raise CaffeConversionError(
            f"layer \"{layer.name}\" ({layer.type}) reads {len(inputs)} blob(s) (its \"bottom\" fields), fewer "
            f"than a {layer.type} layer needs; check the prototxt") from None
    except (RuntimeError, ValueError, TypeError) as exc:
        shapes_in = [str(v.get_partial_shape()) for v in inputs]
        raise CaffeConversionError(
            f"layer \"{layer.name}\" ({layer.type}) with input shape(s) {', '.join(shapes_in)}: OpenVINO "
            f"rejected it: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    if len(produced) != len(layer.outputs):
        raise CaffeConversionError(f"layer \"{layer.name}\" ({layer.type}): expected {len(produced)} top(s), "
                                   f"found {len(layer.outputs)}")
    for version, value in zip(layer.outputs, produced):
        node = value.get_node()
        if node.get_type_name() not in ("Parameter", "Constant") and all(value != v for v in inputs):
            node.set_friendly_name(layer.name)
        values[version] = value


def _refuse_oversized(net: Net, layer, values: dict) -> None:
    """Each top within bounds.TENSOR_MAX_SIZE, checked before the next layer: the sizes a net's layers
    ask for are its prototxt's, not bounded by its files' sizes (pad: 16000 asks 16 GB)."""
    for index, version in enumerate(layer.outputs):
        top = f", top {index} \"{version[0]}\"" if len(layer.outputs) > 1 else ""
        sentence = oversized_output(values[version], f"layer \"{layer.name}\" ({layer.type}){top}")
        if sentence is not None:
            raise CaffeConversionError(f"{net.proto_path}: {sentence}")


def _named_outputs(net: Net, values: dict, order) -> list:
    """(version, tensor names) per Result, with Model Optimizer's names and order (see names.py)."""
    tensors = tensor_names(net, values)
    return requested_outputs(net, order, values, tensors) if order else default_outputs(net, values, tensors)


def _result(value, tensor_names) -> object:
    value.get_tensor().set_names(set(tensor_names))
    result = ops.result(value)
    result.set_friendly_name(f"{sorted(tensor_names)[0]}/sink_port_0")
    return result


def build(net: Net, options: mo_args.Options) -> Model:
    shapes = mo_args.resolve_input_shapes(options, net.inputs)
    outputs = _output_versions(net, options.outputs)
    by_layer = {layer.name: layer for layer in net.layers}
    order = [(item, _named_version(net, by_layer, item), user_name(net, item)) for item in options.outputs]
    net.layers = _needed(net, outputs)
    _refuse_unsupported(net)
    fold(net, outputs)
    optimize_strides(net, outputs)
    ctx = Context(net.model_path)
    values: Dict[Version, object] = {}
    params = _parameters(shapes, values)
    for param in params:  # an input too big is named itself, not the first layer that reads it
        sentence = oversized_output(param.output(0), f"layer \"{param.get_friendly_name()}\" (Parameter)")
        if sentence is not None:
            raise CaffeConversionError(f"{net.proto_path}: {sentence}")
    for layer in net.layers:
        _translate(ctx, layer, values)
        _refuse_oversized(net, layer, values)
        # Its weights now live in Constants: dropping the arrays keeps one copy of the weights in
        # memory, not two (the converter's peak memory is about the caffemodel's size, not twice it).
        for done in [layer, *getattr(layer, "fold_chain", ())]:
            done.blobs = []
    results = [_result(values[version], tensor) for version, tensor in _named_outputs(net, values, order)]
    model_name = options.model_name or Path(options.input_model or net.name or "model").stem
    used = {v for layer in net.layers for v in layer.inputs} | set(outputs)
    if options.outputs and not options.inputs:  # as MO: only the inputs the outputs need (measured with --output)
        params = [p for p in params if (p.get_friendly_name(), 0) in used]
    model = Model(results, params, model_name)
    sentence = oversized_tensor(model)  # before anything runs it: its layers' sizes are the prototxt's
    if sentence is not None:
        raise CaffeConversionError(f"{net.proto_path}: {sentence}")
    return preprocess(model, options)
