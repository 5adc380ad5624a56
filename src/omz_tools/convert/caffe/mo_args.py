"""Model Optimizer's command-line arguments, as far as the native Caffe front end honours them.

``parse`` turns the argument list the converter builds for MO into ``Options``; anything not
understood raises ``UnsupportedArgumentError`` naming it. The arguments keep MO 2024.6's meaning:

- ``--input`` names the inputs (``data``, ``data[1,3,224,224]``, ``data:0``, ``data{f32}``, several
  comma-separated), ``--input_shape`` gives their shapes (the n-th shape for the n-th input),
  ``--batch`` their first dimension;
- ``--output`` cuts the network at named layers or blobs (``name``, ``layer:port`` for a top,
  ``port:layer`` for a bottom), the outputs in the order given;
- ``preprocess.preprocess`` applies, with OpenVINO's own PrePostProcessor (what MO 2024.6 itself uses), the
  layout (``--layout``, ``--source_layout``, ``--target_layout``), then ``--reverse_input_channels``,
  then ``--mean_values``, then ``--scale_values`` or ``--scale`` (MO's order, whatever the order on
  the command line); without a layout the channel axis is guessed as MO does (the one dimension
  whose size is the number of values, 3 for reversing);
- Model Optimizer's switches for its own graph passes and logging (``--disable_fusing`` and the
  like) do not change what the native front end builds: they are accepted and said in ``notes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from omz_tools.convert.mo_cli_args import (bracketed_shapes, checked_values, layout_items, numbers, option_pairs,
                                           split_top)

from .errors import CaffeConversionError, UnsupportedArgumentError

# accepted, no effect: the caller saves the model and picks its precision
IGNORED = {"framework", "output_dir", "compress_to_fp16", "caffe_parser_path"}
# accepted with a note: MO's own graph passes, IR flavours and logging; the native IR is the same with or without
NO_OP_FLAGS = {"disable_fusing", "disable_gfusing", "disable_resnet_optimization", "finegrain_fusing",
               "enable_concat_optimization", "disable_nhwc_to_nchw", "keep_shape_ops", "static_shape",
               "silent", "progress", "stream_output", "use_new_frontend", "use_legacy_frontend",
               "disable_weights_compression", "generate_deprecated_IR_V7", "legacy_ir_generation",
               "move_to_preprocess", "share_weights", "input_model_is_text"}
NO_OP_VALUED = {"log_level", "data_type"}
VALUED = {"input", "input_shape", "mean_values", "scale_values", "scale", "batch", "output", "layout",
          "source_layout", "target_layout", "model_name", "input_model", "input_proto"} | IGNORED | NO_OP_VALUED
FLAGS = {"reverse_input_channels"} | NO_OP_FLAGS
SHORT = {"-m": "input_model", "-b": "batch", "-n": "model_name", "-o": "output_dir", "-s": "scale",
         "-d": "input_proto"}
_NO_OP_WHY = ("Model Optimizer's switch for its own graph transformations, IR flavour or logging; the native "
              "front end builds the same model with or without it")


@dataclass
class Options:
    input_model: Optional[str] = None
    input_proto: Optional[str] = None
    model_name: Optional[str] = None
    inputs: List[str] = field(default_factory=list)
    input_shapes: Dict[str, List[int]] = field(default_factory=dict)   # name -> shape, from --input
    shape_list: List[List[int]] = field(default_factory=list)         # --input_shape, in order
    batch: Optional[int] = None
    outputs: List[str] = field(default_factory=list)                  # names; 'layer:N' / 'N:layer' ports
    mean_values: Dict[str, List[float]] = field(default_factory=dict)  # name -> values
    scale_values: Dict[str, List[float]] = field(default_factory=dict)
    mean_list: List[List[float]] = field(default_factory=list)        # unnamed: the n-th for the n-th input
    scale_list: List[List[float]] = field(default_factory=list)
    scale: Optional[float] = None
    reverse_input_channels: bool = False
    layouts: Dict[str, tuple] = field(default_factory=dict)           # name ('' = the only input) -> (src, dst)
    notes: List[str] = field(default_factory=list)


def _numbers(text: str, arg: str, kind=float) -> List:
    return numbers(text, arg, kind, UnsupportedArgumentError)


def _value_lists(value: str, arg: str):
    """MO's forms: 'data[1,2,3]', 'data(1,2,3)', 'a[1],b[2]' (named) or '[1,2,3]', '(1),(2)' (in input order)."""
    named, unnamed = {}, []
    matches = list(re.finditer(r"([^\[\]()]*?)\s*[\[(]([^\])]*)[\])]", value))
    rest = re.sub(r"[,\s]", "", re.sub(r"[^\[\]()]*?\s*[\[(][^\])]*[\])]", "", value))
    if not matches or rest:
        raise UnsupportedArgumentError(f"--{arg}={value}: expected values in brackets, e.g. data[104,117,123], "
                                       "[104,117,123] or a[1,2,3],b[4,5,6]")
    for match in matches:
        name = match.group(1).strip().strip(",").strip()
        numbers = checked_values(_numbers(match.group(2), arg), arg, UnsupportedArgumentError)
        if name:
            named[name] = numbers
        else:
            unnamed.append(numbers)
    if named and unnamed:
        raise UnsupportedArgumentError(f"--{arg}={value}: name every input's values or none (as Model Optimizer)")
    return named, unnamed


def _key_values(args: Sequence[str]):
    return option_pairs(args, VALUED.__contains__, UnsupportedArgumentError, short=SHORT,
                        by=" by the native Caffe front end")


def _refuse_unknown(key: str) -> None:
    known = ", ".join("--" + k for k in sorted(VALUED | FLAGS))
    raise UnsupportedArgumentError(
        f"Model Optimizer argument --{key} is not supported by the native Caffe front end (it understands {known}); "
        "remove it, or convert with --backend mo")


def parse(args: Sequence[str]) -> Options:
    options = Options()
    for key, value in _key_values(args):
        if key not in VALUED and key not in FLAGS:
            _refuse_unknown(key)
        if key in FLAGS and value not in (None, "", "True", "true", "1"):
            raise UnsupportedArgumentError(f"--{key} takes no value, found {value!r}")
        if key == "framework" and value != "caffe":
            raise UnsupportedArgumentError(f"--framework={value}: the native front end converts Caffe models only")
        if key in NO_OP_FLAGS or key in NO_OP_VALUED:
            options.notes.append(f"--{key}{'=' + value if value else ''}: no effect ({_NO_OP_WHY})")
        elif key == "reverse_input_channels":
            options.reverse_input_channels = True
        elif key in ("input_model", "input_proto", "model_name"):
            setattr(options, key, value)
        elif key in _HANDLERS:
            _HANDLERS[key](options, value)
    if options.input_model is None:
        raise UnsupportedArgumentError("expected --input_model=<file>.caffemodel among the Model Optimizer arguments")
    _check_combinations(options)
    return options


def _input(options: Options, value: str) -> None:
    for item in split_top(value):
        if "->" in item:
            raise UnsupportedArgumentError(f"--input={value}: freezing an input to a value (->) is not supported by "
                                           "the native Caffe front end; use --backend mo")
        text = item
        kind = re.search(r"\{([^}]*)\}", text)
        if kind:
            if kind.group(1).strip().lower() not in ("f32", "fp32", "float", "float32"):
                raise UnsupportedArgumentError(f"--input={value}: input type {{{kind.group(1)}}}: the native Caffe "
                                               "front end makes f32 inputs only; use --backend mo")
            text = text[:kind.start()] + text[kind.end():]
        name, bracket, rest = text.partition("[")
        name = name.strip()
        options.inputs.append(name)
        if bracket:
            options.input_shapes[name] = _numbers(rest.rstrip("] "), "input", int)


def _input_shape(options: Options, value: str) -> None:
    shapes = bracketed_shapes(value, "input_shape", UnsupportedArgumentError)
    options.shape_list.extend(_numbers(m, "input_shape", int) for m in shapes)


def _mean_or_scale(table: str):
    def handle(options: Options, value: str) -> None:
        named, unnamed = _value_lists(value, table)
        getattr(options, table).update(named)
        getattr(options, table.replace("_values", "_list")).extend(unnamed)
    return handle


def _scale(options: Options, value: str) -> None:
    try:
        scale = float(value)
    except ValueError:
        raise UnsupportedArgumentError(f"--scale: expected one number, found {value!r}") from None
    options.scale = checked_values([scale], "scale", UnsupportedArgumentError)[0]


def _batch(options: Options, value: str) -> None:
    if not (value.isascii() and value.isdigit()) or len(value) > 18 or int(value) < 1:
        raise UnsupportedArgumentError(f"--batch: expected a positive whole number, found {value!r}")
    options.batch = int(value)


def _output(options: Options, value: str) -> None:
    options.outputs.extend(split_top(value))


def _layout(kind: str):
    def handle(options: Options, value: str) -> None:
        for name, text in layout_items(value):
            src, dst = options.layouts.get(name, (None, None))
            if kind == "layout":
                src, arrow, target = text.partition("->")
                dst = target.strip() if arrow else dst
                src = src.strip() or None
            elif kind == "source_layout":
                src = text
            else:
                dst = text
            options.layouts[name] = (src, dst)
    return handle


_HANDLERS = {"input": _input, "input_shape": _input_shape, "mean_values": _mean_or_scale("mean_values"),
             "scale_values": _mean_or_scale("scale_values"), "scale": _scale, "batch": _batch, "output": _output,
             "layout": _layout("layout"), "source_layout": _layout("source_layout"),
             "target_layout": _layout("target_layout")}


def _check_combinations(options: Options) -> None:
    """The combinations Model Optimizer refuses, refused with its reasons."""
    if options.scale is not None and (options.scale_values or options.scale_list):
        raise UnsupportedArgumentError("both --scale and --scale_values are given; give one scale factor for every "
                                       "input (--scale) or values per input channel (--scale_values), not both")
    if options.shape_list and options.input_shapes:
        raise UnsupportedArgumentError("shapes are given both in --input and in --input_shape; give them in one")
    if options.batch is not None and (options.shape_list or options.input_shapes):
        raise UnsupportedArgumentError("shapes are given by --batch and by --input/--input_shape; give one of them")
    bare = {re.sub(r"^\d+:|:\d+$", "", name) for name in options.inputs} | set(options.inputs)
    for table in ("mean_values", "scale_values"):
        for name in getattr(options, table):
            if options.inputs and name not in bare:
                raise UnsupportedArgumentError(f"--{table}: {name!r} is not one of the --input names "
                                               f"({', '.join(options.inputs)})")


def input_name(options_name: str, net_inputs: Dict[str, List[int]]) -> str:
    """The network input an --input item names: 'data', or its output port 'data:0' (or '0:data')."""
    if options_name in net_inputs:
        return options_name
    match = re.fullmatch(r"(.+):(\d+)|(\d+):(.+)", options_name)
    if match:
        name, port = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
        if name in net_inputs and port == "0":
            return name
    raise CaffeConversionError(
        f"--input={options_name}: the network has no input named {options_name!r} (its inputs: "
        f"{', '.join(net_inputs)}); cutting the network at an inner layer or blob is not supported by the native "
        "Caffe front end, use --backend mo")


def resolve_input_shapes(options: Options, net_inputs: Dict[str, List[int]]) -> Dict[str, List[int]]:
    """The input shapes after --input/--input_shape/--batch (MO's pairing: the n-th shape for the n-th input),
    in the order of the model's inputs."""
    shapes = {name: list(shape) for name, shape in net_inputs.items()}
    options.inputs = [input_name(name, shapes) for name in options.inputs]
    named = {input_name(k, shapes): v for k, v in options.input_shapes.items()}
    if options.shape_list:
        targets = options.inputs or list(shapes)
        if len(options.shape_list) != len(targets):
            raise CaffeConversionError(f"--input_shape gives {len(options.shape_list)} shape(s) for {len(targets)} "
                                       f"input(s) ({', '.join(targets)}); expected one per input")
        named.update(zip(targets, options.shape_list))
    for name, shape in named.items():
        shapes[name] = [int(d) for d in shape]
    if options.batch is not None:
        for name, shape in shapes.items():
            if shape:
                shapes[name] = [options.batch] + shape[1:]
    # MO 2024.6's order of the IR's inputs (measured): the --input names as given, the others by name
    order = list(dict.fromkeys(options.inputs)) + sorted(n for n in shapes if n not in options.inputs)
    return {name: shapes[name] for name in order}

