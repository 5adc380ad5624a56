"""Model Optimizer's command line (openvino-dev 2024.6), parsed for backends that run without it.

``parse`` turns the argument list the converter builds for MO (``mo.model_arguments``) into
:class:`MOArgs`, framework-neutral: the source files, ``--input`` (names, shapes, types,
freezing values, ports), ``--input_shape``, ``--output``, ``--mean_values``, ``--scale_values``,
``--scale``, ``--reverse_input_channels``, ``--layout``/``--source_layout``/``--target_layout``,
``--freeze_placeholder_with_value``, ``--model_name``. Like MO's argparse it accepts unambiguous
prefixes of option names (Open Model Zoo writes ``--input_meta`` for ``--input_meta_graph``).
An argument that only Model Optimizer can honour raises :class:`MOArgumentError` naming it.
The native Caffe front end has its own, narrower parser (``convert.caffe.mo_args``) built on this
module's text helpers: ``split_top``, ``numbers``, ``checked_values``, ``bracketed_shapes``, ``layout_items``
and ``option_pairs``, each taking the error class to raise. Mean and scale values of nan or infinity,
and scales of 0 (Model Optimizer divides by them), are refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Type

from omz_tools.errors import OmzError


class MOArgumentError(OmzError):
    """A Model Optimizer argument this backend cannot honour or parse; the message names it."""


# Options that take a value, and flags. Accepted with no effect: the converter picks the folder,
# the name of the files and the precision (FP16 is derived from the FP32 model).
VALUED = {"input_model", "input", "input_shape", "output", "mean_values", "scale_values", "scale", "layout",
          "source_layout", "target_layout", "model_name", "saved_model_dir", "input_meta_graph",
          "input_checkpoint", "saved_model_tags", "freeze_placeholder_with_value", "framework", "output_dir",
          "compress_to_fp16", "data_type", "log_level", "caffe_parser_path", "input_proto"}
FLAGS = {"reverse_input_channels", "input_model_is_text", "silent", "progress", "stream_output"}
IGNORED = {"output_dir", "compress_to_fp16", "data_type", "log_level", "silent", "progress", "stream_output"}
# Model Optimizer's own graph transformations (its legacy front ends and their JSON configurations):
# openvino.convert_model has no equivalent, so a model that needs them needs Model Optimizer.
NEEDS_MO = {
    "transformations_config": "a Model Optimizer transformation configuration (legacy front-end graph rewrites)",
    "tensorflow_object_detection_api_pipeline_config": "the Object Detection API rewrites of Model Optimizer",
    "tensorflow_custom_operations_config_update": "Model Optimizer's custom-operations configuration",
    "tensorflow_custom_layer_libraries": "TensorFlow custom-layer libraries loaded by Model Optimizer",
    "use_legacy_frontend": "Model Optimizer's legacy front end",
    "extensions": "Model Optimizer extensions (Python graph rewrites)",
    "batch": "Model Optimizer's --batch rewrite", "static_shape": "Model Optimizer's static-shape mode",
}
KNOWN = VALUED | FLAGS | set(NEEDS_MO)


@dataclass
class InputSpec:
    name: str = ""                   # '' when only a shape was given
    shape: Optional[str] = None      # "[1,3,224,224]" ("?" or -1: dynamic, "1..10": a range)
    dtype: Optional[str] = None      # e.g. "f32", "i32"
    value: Optional[str] = None      # a freezing value, as written ("False", "[16]")
    listed: bool = True              # named by --input (not only by --freeze_placeholder_with_value)


@dataclass
class MOArgs:
    framework: str = ""
    input_model: Optional[str] = None
    saved_model_dir: Optional[str] = None
    input_meta_graph: Optional[str] = None
    input_checkpoint: Optional[str] = None
    input_model_is_text: bool = False
    saved_model_tags: Optional[str] = None
    model_name: Optional[str] = None
    inputs: List[InputSpec] = field(default_factory=list)
    outputs: List[str] = field(default_factory=list)
    mean_values: Dict[str, List[float]] = field(default_factory=dict)   # '' = unnamed (every input in turn)
    scale_values: Dict[str, List[float]] = field(default_factory=dict)
    scale: Optional[float] = None
    reverse_input_channels: bool = False
    layouts: Dict[str, Tuple[str, str]] = field(default_factory=dict)  # name ('' = the only input) -> (source, target)


def split_top(text: str) -> List[str]:
    """Split on commas outside brackets/braces/parentheses: 'a[1,2],b' -> ['a[1,2]', 'b']."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char in "[({") - (char in "])}")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _shape(text: str, arg: str) -> str:
    dims = [d for d in re.split(r"[,\s]+", text.strip()) if d]
    for dim in dims:
        if not re.fullmatch(r"\?|-1|\d+|\d*\.\.\d*", dim):
            raise MOArgumentError(f"--{arg}: {dim!r} is not a dimension (expected a number, ? or -1, or a "
                                  f"range such as 1..10) in [{text}]")
    return "[" + ",".join("?" if d == "-1" else d for d in dims) + "]"


def numbers(text: str, arg: str, kind: Callable = float, error: Type[OmzError] = MOArgumentError) -> List:
    """'1, 2 3' -> [1.0, 2.0, 3.0] (``kind`` of each); anything else raises ``error`` naming --``arg``."""
    try:
        return [kind(t) for t in re.split(r"[,\s]+", text.strip()) if t]
    except ValueError:
        raise error(f"--{arg}: expected numbers, found {text!r}") from None


def checked_values(values: List[float], arg: str, error: Type[OmzError] = MOArgumentError) -> List[float]:
    """``values`` of --``arg`` (mean_values, scale_values, scale), refused where Model Optimizer would build a
    broken model: no value, nan or infinity, a scale of 0 (the input is divided by it)."""
    if not values:
        raise error(f"--{arg}: expected at least one number, found none")
    for value in values:
        if not math.isfinite(value):
            raise error(f"--{arg}: {value} is not a finite number (values {values}); give finite numbers")
        if value == 0 and arg.startswith("scale"):
            raise error(f"--{arg}: a scale of 0 (values {values}) divides the input by zero; give non-zero "
                        "scales (1 for no scaling)")
    return values


def bracketed_shapes(value: str, arg: str, error: Type[OmzError] = MOArgumentError) -> List[str]:
    """The texts inside each [...] or (...) of ``value``: '[1,3,224,224],[1,10]' -> ['1,3,224,224', '1,10']."""
    shapes = re.findall(r"[\[(]([^\])]*)[\])]", value)
    if not shapes:
        raise error(f"--{arg}={value}: expected a shape in brackets, e.g. [1,3,224,224]")
    return shapes


def layout_items(value: str) -> List[Tuple[str, str]]:
    """'a(NCHW),b[NHWC->NCHW]' -> [('a', 'NCHW'), ('b', 'NHWC->NCHW')]; 'NCHW' -> [('', 'NCHW')]."""
    named = re.findall(r"([^,()\[\]]*)[(\[]([^)\]]*)[)\]]", value)
    return [(n.strip(), v.strip()) for n, v in named] if named else [("", value.strip())]


def _named_values(value: str, arg: str) -> Dict[str, List[float]]:
    """'data[1,2,3]', '[1,2,3]', 'a[1,2],b[3,4]' or '(1,2,3)' -> {name or '': values}."""
    found = {m.group(1).strip(): checked_values(numbers(m.group(2) or m.group(3) or "", arg), arg)
             for m in re.finditer(r"([^\[\](),]*)(?:\[([^\]]*)\]|\(([^)]*)\))", value)}
    if not found:
        try:
            return {"": checked_values([float(value)], arg)}  # a single number for the only input
        except ValueError:
            raise MOArgumentError(f"--{arg}={value}: expected values in brackets, e.g. data[104,117,123]") from None
    return found


def _input(item: str) -> InputSpec:
    """MO's 'name[shape]{type}->value' (each part optional; 'name:port' and 'port:name' kept in the name)."""
    match = re.fullmatch(r"([^\[\]{}]*?)\s*(?:\[([^\]]*)\])?\s*(?:\{([^}]*)\})?\s*(?:->\s*(.+))?", item)
    if match is None:
        raise MOArgumentError(f"--input: cannot read {item!r} (expected name[shape]{{type}}->value)")
    name, shape, dtype, value = match.groups()
    return InputSpec(name=name.strip(), shape=_shape(shape, "input") if shape is not None else None,
                     dtype=dtype.strip() if dtype else None, value=value.strip() if value else None)


def _layouts(value: str, arg: str) -> Dict[str, Tuple[str, str]]:
    result = {}
    for name, text in layout_items(value):
        source, arrow, target = text.partition("->")
        if arg == "target_layout":
            source, target = "", source
        result[name] = (source.strip(), target.strip() if arrow or arg == "target_layout" else "")
    return result


def _expand(key: str) -> str:
    """argparse's prefix matching of long option names."""
    if key in KNOWN:
        return key
    matches = sorted(k for k in KNOWN if k.startswith(key))
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise MOArgumentError(f"Model Optimizer argument --{key} is ambiguous: it could be "
                              f"{', '.join('--' + m for m in matches)}")
    raise MOArgumentError(f"Model Optimizer argument --{key} is not supported without Model Optimizer (this "
                          f"backend understands {', '.join('--' + k for k in sorted(VALUED | FLAGS))}); "
                          "remove it, or convert with --backend mo")


def option_pairs(args: Sequence[str], takes_value: Callable[[str], bool], error: Type[OmzError] = MOArgumentError,
                 expand: Callable[[str], str] = str, short: Optional[Dict[str, str]] = None,
                 by: str = "") -> Iterator[Tuple[str, Optional[str]]]:
    """(option, value) pairs of MO's ``--name=value``/``--name value`` arguments: ``short`` maps '-m' to a
    name, ``expand`` completes a name, a name that ``takes_value`` rejects without '=' gives None; ``by`` ends
    "is not understood" (' by ...')."""
    args, i = list(args), 0
    while i < len(args):
        arg = "--" + short[args[i]] if short and args[i] in short else args[i]
        if not arg.startswith("--"):
            raise error(f"Model Optimizer argument {arg!r} is not understood{by} (expected --name=value "
                        "or --name value)")
        key, eq, value = arg[2:].partition("=")
        key = expand(key)
        if not eq and takes_value(key):
            if i + 1 >= len(args):
                raise error(f"Model Optimizer argument --{key} needs a value")
            value, i = args[i + 1], i + 1
        yield key, (value if eq or takes_value(key) else None)
        i += 1


def key_values(args: Sequence[str]) -> Iterator[Tuple[str, Optional[str]]]:
    """(option, value) pairs of ``args``, option names expanded; flags give None."""
    return option_pairs(args, lambda key: key not in FLAGS and key not in NEEDS_MO, expand=_expand)


def refusal(key: str) -> str:
    return (f"--{key} needs Model Optimizer ({NEEDS_MO[key]}), which openvino.convert_model cannot honour; "
            "convert this model with --backend mo (openvino-dev 2024.6)")


def parse(args: Sequence[str]) -> MOArgs:
    """``args``: Model Optimizer's arguments with the registry's $variables expanded."""
    out = MOArgs()
    for key, value in key_values(args):
        if key in NEEDS_MO:
            raise MOArgumentError(refusal(key))
        if key in IGNORED or key in ("caffe_parser_path", "input_proto"):
            continue
        if key in ("reverse_input_channels", "input_model_is_text"):
            if value not in (None, "", "True", "true", "1"):
                raise MOArgumentError(f"--{key} takes no value, found {value!r}")
            setattr(out, key, True)
        elif key in ("framework", "input_model", "saved_model_dir", "input_meta_graph", "input_checkpoint",
                     "saved_model_tags", "model_name"):
            setattr(out, key, value)
        elif key == "input":
            _merge_inputs(out, [_input(item) for item in split_top(value)])
        elif key == "input_shape":
            _merge_shapes(out, [_shape(m, key) for m in bracketed_shapes(value, key)])
        elif key == "freeze_placeholder_with_value":
            for item in split_top(value):
                name, arrow, frozen = item.partition("->")
                if not arrow:
                    raise MOArgumentError(f"--freeze_placeholder_with_value={value}: expected name->value")
                _merge_inputs(out, [InputSpec(name=name.strip(), value=frozen.strip(), listed=False)])
        elif key in ("mean_values", "scale_values"):
            getattr(out, key).update(_named_values(value, key))
        elif key == "scale":
            scale = checked_values(numbers(value, key), key)
            if len(scale) != 1:
                raise MOArgumentError(f"--scale: expected one number, found {value!r}")
            out.scale = scale[0]
        elif key == "output":
            out.outputs += [o.strip().strip('"') for o in split_top(value)]
        else:  # layout, source_layout, target_layout
            for name, (source, target) in _layouts(value, key).items():
                old = out.layouts.get(name, ("", ""))
                out.layouts[name] = (source or old[0], target or old[1])
    return out


def _merge_inputs(out: MOArgs, specs: List[InputSpec]) -> None:
    """A later --input/--freeze_placeholder_with_value completes the entry of the same name."""
    by_name = {s.name: s for s in out.inputs if s.name}
    for spec in specs:
        known = by_name.get(spec.name) if spec.name else None
        if known is None:
            out.inputs.append(spec)
            continue
        for attr in ("shape", "dtype", "value"):
            if getattr(spec, attr) is not None:
                setattr(known, attr, getattr(spec, attr))


def _merge_shapes(out: MOArgs, shapes: List[str]) -> None:
    """MO pairs the n-th --input_shape with the n-th --input (or the model's n-th input)."""
    named = [s for s in out.inputs if s.listed]
    if named and len(named) != len(shapes):
        raise MOArgumentError(f"--input_shape gives {len(shapes)} shape(s) for {len(named)} input(s) "
                              f"({', '.join(s.name for s in named)}); expected one per input")
    if not named:
        out.inputs += [InputSpec(shape=s) for s in shapes]
    for spec, shape in zip(named, shapes):
        spec.shape = shape
