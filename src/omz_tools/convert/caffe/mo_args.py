"""Model Optimizer's command-line arguments, as far as the native Caffe front end honours them.

``parse`` turns the argument list the converter builds for MO into ``Options``; anything not
understood raises ``UnsupportedArgumentError`` naming it. ``apply_*`` give the arguments MO's
meaning on the built model: ``--input_shape`` replaces the network's input shapes, ``--output``
cuts the network at named layers/blobs, ``--reverse_input_channels`` then ``--mean_values`` then
``--scale_values`` are inserted after the input (MO's order: reverse, subtract, divide),
``--layout`` is set on the inputs, ``--model_name`` names the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from .errors import CaffeConversionError, UnsupportedArgumentError

# accepted, no effect: the caller saves the model and picks its precision
IGNORED = {"framework", "output_dir", "compress_to_fp16", "caffe_parser_path", "data_type"}
VALUED = {"input", "input_shape", "mean_values", "scale_values", "output", "layout", "model_name",
          "input_model", "input_proto"} | IGNORED
FLAGS = {"reverse_input_channels"}


@dataclass
class Options:
    input_model: Optional[str] = None
    input_proto: Optional[str] = None
    model_name: Optional[str] = None
    inputs: List[str] = field(default_factory=list)
    input_shapes: Dict[str, List[int]] = field(default_factory=dict)   # name ('' = the only input) -> shape
    outputs: List[str] = field(default_factory=list)
    mean_values: Dict[str, List[float]] = field(default_factory=dict)  # name ('' = every input) -> values
    scale_values: Dict[str, List[float]] = field(default_factory=dict)
    reverse_input_channels: bool = False
    layouts: Dict[str, str] = field(default_factory=dict)              # name ('' = every input) -> layout


def _split_top(text: str) -> List[str]:
    """Split on commas outside brackets/parentheses: 'a[1,2],b' -> ['a[1,2]', 'b']."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _numbers(text: str, arg: str, kind=float) -> List:
    items = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    try:
        return [kind(t) for t in items]
    except ValueError:
        raise UnsupportedArgumentError(f"--{arg}: expected numbers, found {text!r}") from None


def _named_lists(value: str, arg: str, kind=float) -> Dict[str, List]:
    """'data[1,2,3]' or '[1,2,3]' or 'a[1,2],b[3,4]' -> {name or '': values}."""
    result = {}
    for match in re.finditer(r"([^\[\],]*)\[([^\]]*)\]", value):
        result[match.group(1).strip()] = _numbers(match.group(2), arg, kind)
    if not result:
        raise UnsupportedArgumentError(f"--{arg}={value}: expected values in brackets, e.g. data[104,117,123]")
    return result


def _key_values(args: Sequence[str]):
    i = 0
    args = list(args)
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise UnsupportedArgumentError(f"Model Optimizer argument {arg!r} is not understood by the native Caffe "
                                           "front end (expected --name=value or --name value)")
        key, eq, value = arg[2:].partition("=")
        if not eq and key in VALUED:
            if i + 1 >= len(args):
                raise UnsupportedArgumentError(f"Model Optimizer argument --{key} needs a value")
            value = args[i + 1]
            i += 1
        elif not eq and key not in FLAGS:
            value = None
        yield key, value
        i += 1


def parse(args: Sequence[str]) -> Options:
    options = Options()
    for key, value in _key_values(args):
        if key in IGNORED:
            if key == "framework" and value != "caffe":
                raise UnsupportedArgumentError(f"--framework={value}: the native front end converts Caffe models only")
            continue
        if key not in VALUED and key not in FLAGS:
            raise UnsupportedArgumentError(
                f"Model Optimizer argument --{key} is not supported by the native Caffe front end (it understands "
                f"{', '.join('--' + k for k in sorted(VALUED | FLAGS))}); remove it, or convert with --backend mo")
        if key == "reverse_input_channels":
            if value not in (None, "", "True", "true", "1"):
                raise UnsupportedArgumentError(f"--reverse_input_channels takes no value, found {value!r}")
            options.reverse_input_channels = True
        elif key in ("input_model", "input_proto", "model_name"):
            setattr(options, key, value)
        elif key == "input":
            for item in _split_top(value):
                name, bracket, rest = item.partition("[")
                if ":" in name or "{" in item or "->" in item:
                    raise UnsupportedArgumentError(f"--input={value}: ports, types and values of inputs are not "
                                                   "supported by the native Caffe front end; use --backend mo")
                options.inputs.append(name.strip())
                if bracket:
                    options.input_shapes[name.strip()] = _numbers(rest.rstrip("]"), "input", int)
        elif key == "input_shape":
            shapes = [_numbers(m, "input_shape", int) for m in re.findall(r"[\[(]([^\])]*)[\])]", value)]
            if not shapes:
                raise UnsupportedArgumentError(f"--input_shape={value}: expected a shape in brackets, e.g. [1,3,224,224]")
            options.input_shapes["\0shapes"] = shapes  # matched with --input names in resolve_inputs
        elif key in ("mean_values", "scale_values"):
            getattr(options, key).update(_named_lists(value, key))
        elif key == "output":
            for item in _split_top(value):
                if re.search(r":\d+$|^\d+:", item):
                    raise UnsupportedArgumentError(f"--output={value}: output ports are not supported by the native "
                                                   "Caffe front end; name layers or blobs")
                options.outputs.append(item)
        elif key == "layout":
            if "->" in value:
                raise UnsupportedArgumentError(f"--layout={value}: changing the layout (source->target) is not "
                                               "supported by the native Caffe front end; use --backend mo")
            named = re.findall(r"([^,(]*)\(([^)]*)\)", value)
            if named:
                options.layouts.update({n.strip(): l.strip() for n, l in named})
            else:
                options.layouts[""] = value.strip()
    if options.input_model is None:
        raise UnsupportedArgumentError("expected --input_model=<file>.caffemodel among the Model Optimizer arguments")
    return options


def resolve_input_shapes(options: Options, net_inputs: Dict[str, List[int]]) -> Dict[str, List[int]]:
    """The input shapes after --input/--input_shape (MO's pairing: the n-th shape for the n-th --input)."""
    shapes = dict(net_inputs)
    for name in options.inputs:
        if name not in shapes:
            raise CaffeConversionError(
                f"--input={name}: the network has no input named {name!r} (its inputs: {', '.join(shapes)}); cutting "
                "the network at an inner blob is not supported by the native Caffe front end, use --backend mo")
    given = options.input_shapes.get("\0shapes", [])
    named = {k: v for k, v in options.input_shapes.items() if k != "\0shapes"}
    if given:
        targets = options.inputs or list(shapes)
        if len(given) != len(targets):
            raise CaffeConversionError(f"--input_shape gives {len(given)} shape(s) for {len(targets)} input(s) "
                                       f"({', '.join(targets)}); expected one per input")
        named.update(zip(targets, given))
    for name, shape in named.items():
        shapes[name] = [int(d) for d in shape]
    return shapes
