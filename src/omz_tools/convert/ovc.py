"""The ``ovc`` backend: ``openvino.convert_model`` with Model Optimizer's arguments, in a child process
(``ovc_child``).

For every framework OpenVINO reads without Model Optimizer: ONNX, TensorFlow (frozen graph, text
graph, SavedModel, meta graph, checkpoint), PaddlePaddle, and PyTorch through the ONNX export Open
Model Zoo's ``conversion_to_onnx_args`` describe (``ovc_pytorch``). The model's MO arguments
(``mo_cli_args``) become: the source and ``convert_model(input=[(name, shape, type)...],
output=[...])``; freezing values (``--input name->value``, ``--freeze_placeholder_with_value``)
replace those parameters with constants after reading; then ``ovc_preprocess`` (layout, reverse
channels, mean, scale, as MO applies them) and the model name. What only Model Optimizer can
do (``--transformations_config`` and the other legacy front-end options) is refused by name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from omz_tools.convert import mo_cli_args, ovc_preprocess
from omz_tools.convert.mo_cli_args import MOArgs, MOArgumentError
from omz_tools.errors import OmzError

READS = ("onnx", "tf", "paddle", "pytorch")  # pytorch: through the ONNX export
GONE = {"mxnet": ("MXNet", "Model Optimizer of openvino-dev 2023.x or older: 2024.6 has no MXNet front end either"),
        "caffe2": ("Caffe2", "after openvino-dev's omz_converter exported it to ONNX (caffe2_to_onnx.py)"),
        "kaldi": ("Kaldi", "Model Optimizer of openvino-dev 2024.6")}


class FrameworkConversionError(OmzError):
    """The model cannot be converted by openvino.convert_model; the message says why and what to try."""


@dataclass
class Plan:
    args: MOArgs
    source: object          # what convert_model reads: a path, or [graph, checkpoint]
    inputs: list = field(default_factory=list)   # (name or None, shape text or None, type or None)
    frozen: list = field(default_factory=list)   # (name, value text, type or None)
    notes: List[str] = field(default_factory=list)
    framework: str = ""

    def call(self) -> str:
        """The convert_model call, as a dry run prints it."""
        parts = [repr(self.source if not isinstance(self.source, Path) else str(self.source))]
        if self.inputs:
            parts.append("input=[" + ", ".join(_input_text(i) for i in self.inputs) + "]")
        if self.args.outputs:
            parts.append(f"output={self.args.outputs!r}")
        cut = " (where convert_model cannot cut there: the model cut at those tensors after reading)" \
            if self.args.outputs else ""
        return f"openvino.convert_model({', '.join(parts)}){cut}"

    def steps(self) -> List[str]:
        steps = [f"freeze {n} = {v}" + (f" ({t})" if t else "") for n, v, t in self.frozen]
        steps += ovc_preprocess.describe(self.args)
        if self.args.model_name:
            steps.append(f"model name {self.args.model_name}")
        return steps


def _input_text(item: tuple) -> str:
    shown = [repr(x) if i != 1 else f"PartialShape({x!r})" for i, x in enumerate(item) if x is not None]
    return "(" + ", ".join(shown) + ")" if len(shown) != 1 else shown[0]


def refusal(framework: str) -> str:
    """Why ``framework`` cannot be converted by this backend ('' if it can)."""
    if framework in GONE:
        label, how = GONE[framework]
        return (f"{label} models need Model Optimizer: OpenVINO has no {label} front end, so openvino.convert_model "
                f"cannot read them; convert with --backend mo ({how})")
    if framework not in READS:
        return (f"the ovc backend reads {', '.join(READS)} models, not '{framework}'; "
                "use --backend mo" + (" or native" if framework == "caffe" else ""))
    return ""


def needs_mo(raw_args: List[str]) -> str:
    """The refusal for the first argument only Model Optimizer honours ('' if none); read before the
    registry's $mo_dir/$mo_ext_dir are expanded (which this backend has not)."""
    try:
        for key, _ in mo_cli_args.key_values(raw_args):
            if key in mo_cli_args.NEEDS_MO:
                return mo_cli_args.refusal(key)
    except MOArgumentError as exc:
        return str(exc)
    return ""


def plan(framework: str, args: List[str], tmp: Optional[Path] = None) -> Plan:
    """What converting with ``args`` (MO arguments, $variables expanded) does. MOArgumentError or
    FrameworkConversionError say what cannot be honoured."""
    why = refusal(framework)
    if why:
        raise FrameworkConversionError(why)
    parsed = mo_cli_args.parse(args)
    result = Plan(args=parsed, source=_source(framework, parsed, tmp), framework=framework)
    for spec in parsed.inputs:
        if spec.value is not None:
            result.frozen.append((spec.name, spec.value, spec.dtype))
        if spec.name or spec.shape or spec.dtype:
            result.inputs.append((spec.name or None, spec.shape if spec.value is None else None, spec.dtype))
    if all(name is None and dtype is None for name, _, dtype in result.inputs):
        result.inputs = [(None, shape, None) for _, shape, _ in result.inputs if shape]
    return result


def _source(framework: str, args: MOArgs, tmp: Optional[Path]):
    if framework != "tf":
        if not args.input_model:
            raise MOArgumentError(f"expected --input_model among the Model Optimizer arguments of a {framework} model")
        return Path(args.input_model)
    if args.saved_model_tags:
        raise MOArgumentError("--saved_model_tags: openvino.convert_model reads a SavedModel's default serving "
                              "tags only; convert with --backend mo")
    if args.saved_model_dir:
        return Path(args.saved_model_dir)
    if args.input_meta_graph:
        return Path(args.input_meta_graph)
    if not args.input_model:
        raise MOArgumentError("expected --input_model, --saved_model_dir or --input_meta_graph among the Model "
                              "Optimizer arguments of a TensorFlow model")
    graph = Path(args.input_model)
    if args.input_model_is_text and graph.suffix != ".pbtxt":
        # OpenVINO's TensorFlow front end tells a text graph by its .pbtxt suffix.
        graph = (tmp or graph.parent) / (graph.stem + ".pbtxt")
    if args.input_checkpoint:
        return [str(graph), str(args.input_checkpoint)]
    return graph


def convert(conversion: Plan):
    """Read and convert; an ``openvino.Model`` with MO's preprocessing applied."""
    import openvino as ov
    source = conversion.source
    args = conversion.args
    if args.input_model_is_text:
        _link_text_graph(Path(args.input_model), Path(source if not isinstance(source, list) else source[0]))
    kwargs = {}
    if conversion.inputs:
        kwargs["input"] = [_ov_input(item) for item in conversion.inputs]
    read = source if isinstance(source, list) else str(source)
    try:
        try:
            model = _read(ov, read, kwargs, args.outputs)
        except Exception as exc:  # noqa: BLE001 - see _tensor_names
            if "input" not in kwargs or "not found among model inputs" not in str(exc):
                raise
            kwargs["input"] = _tensor_names(ov.convert_model(read), conversion.inputs, kwargs["input"])
            model = _read(ov, read, kwargs, args.outputs)
    except FrameworkConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - OpenVINO's front ends raise many types; one message
        text = " ".join(str(exc).split())[:600]
        hint = ("; OpenVINO's TensorFlow front end reads variables of a graph with --input_checkpoint only in some "
                "layouts: convert the meta graph the checkpoint was saved with (--input_meta_graph=<checkpoint>.meta) "
                "or convert with --backend mo --add_mo_arg=--use_legacy_frontend") if isinstance(source, list) else ""
        raise FrameworkConversionError(f"openvino.convert_model failed: {text}{hint}") from None
    _add_operation_names(model, [n for n, _, _ in conversion.inputs if n], args.outputs)
    if conversion.framework == "tf":
        _add_tensor_names(model, args.outputs)
    for name, value, dtype in conversion.frozen:
        _freeze(model, name, value, dtype)
    model = ovc_preprocess.apply(model, args)
    if args.model_name:
        model.set_friendly_name(args.model_name)
    return model


def _read(ov, read, kwargs: dict, outputs: List[str]):
    try:
        return ov.convert_model(read, **kwargs, **({"output": list(outputs)} if outputs else {}))
    except Exception as exc:  # noqa: BLE001 - convert_model of 2025+ only selects among the model's outputs
        if not outputs or "not found among model outputs" not in str(exc):
            raise
        return _cut(ov.convert_model(read, **kwargs), outputs)


def _add_operation_names(model, inputs: List[str], outputs: List[str]) -> None:
    """Model Optimizer's IR names a TensorFlow input or output by its operation ('input'), as the
    registry's input_info and model cards do; OpenVINO 2025+ names only the tensor ('input:0'):
    give such a port the operation's name too."""
    for ports, names in ((model.inputs, inputs), (model.outputs, outputs)):
        for port in ports:
            have = port.get_names()
            port.get_tensor().add_names({n for n in names if n not in have and f"{n}:0" in have})


def _add_tensor_names(model, outputs: List[str]) -> None:
    """Model Optimizer's IR names a TensorFlow output that --output gives by operation ('prob') by its
    tensor ('prob:0'); the model cut at that operation here knows only the operation's name: give
    the port the tensor's name too."""
    for port in model.outputs:
        have = port.get_names()
        port.get_tensor().add_names({f"{n}:0" for n in outputs if ":" not in n and n in have})


def _tensor_names(model, items: list, given: list) -> list:
    """MO named a TensorFlow input by its operation ('input'); OpenVINO 2025+ knows only its tensor
    ('input:0') among the inputs: such a name becomes the tensor's. Other names are left as given."""
    known = {n for port in model.inputs for n in port.get_names()}
    result = []
    for (name, _, _), value in zip(items, given):
        if name and name not in known and f"{name}:0" in known:
            value = (f"{name}:0", *value[1:]) if isinstance(value, tuple) else f"{name}:0"
        result.append(value)
    return result


def _cut(model, names: List[str]):
    """``model`` ending at the tensors (or operations' first outputs) ``names``, in that order: MO's --output."""
    import openvino as ov
    from openvino import opset8
    found = {}
    for op in model.get_ordered_ops():
        for port in op.outputs():
            for name in names:
                if name not in found and (name in port.get_names() or
                                          (name == op.get_friendly_name() and port.get_index() == 0)):
                    found[name] = port
    missing = [n for n in names if n not in found]
    if missing:
        raise FrameworkConversionError(f"--output names {', '.join(missing)}, which the converted model has no "
                                       "tensor or operation of")
    results = [opset8.result(found[n]) for n in names]
    return ov.Model(results, model.get_parameters(), model.get_friendly_name())


def _link_text_graph(graph: Path, target: Path) -> None:
    if graph != target:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        target.symlink_to(graph.absolute())


def _ov_input(item: tuple):
    import openvino as ov
    name, shape, dtype = item
    parts = [p for p in (name, ov.PartialShape(shape) if shape else None, ov.Type(dtype) if dtype else None)
             if p is not None]
    return tuple(parts) if len(parts) > 1 else parts[0]


def _value(text: str):
    text = text.strip()
    lowered = {"true": "True", "false": "False"}.get(text.lower(), text)
    if re.fullmatch(r"\[[^\]]*\]", lowered) and "," not in lowered:
        lowered = "[" + ",".join(lowered[1:-1].split()) + "]"  # MO writes [1 2 3]
    try:
        return ast.literal_eval(lowered)
    except (ValueError, SyntaxError):
        raise MOArgumentError(f"freezing value {text!r} is not a number, a boolean or a list of numbers") from None


def _freeze(model, name: str, text: str, dtype: Optional[str]) -> None:
    """Replace the parameter ``name`` by a constant of ``text`` (MO's --input name->value)."""
    import numpy as np
    import openvino as ov
    from openvino import opset8
    params = [p for p in model.get_parameters()
              if {name, f"{name}:0"} & set(p.output(0).get_names()) or name == p.get_friendly_name()]
    if not params:
        raise MOArgumentError(f"freezing {name}: the converted model has no input of that name (inputs: "
                              f"{', '.join(p.get_friendly_name() for p in model.get_parameters())})")
    param = params[0]
    element = ov.Type(dtype) if dtype else param.get_element_type()
    value = np.array(_value(text), dtype=element.to_dtype())
    constant = opset8.constant(value)
    if element != param.get_element_type():
        constant = opset8.convert(constant, param.get_element_type())
    param.output(0).replace(constant.output(0))
    model.remove_parameter(param)
    model.validate_nodes_and_infer_types()


def versions(framework: str) -> dict:
    """What the IR depends on besides the arguments (for the records), without importing openvino."""
    import importlib.metadata as md
    import platform
    found = {"backend": "ovc", "python": platform.python_version()}
    for package in ("openvino", "torch", "onnx") if framework == "pytorch" else ("openvino",):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            found[package] = "absent"
    return found
