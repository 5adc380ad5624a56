"""PyTorch models: Open Model Zoo's ``conversion_to_onnx_args``, honoured with torch (in the ovc child process).

Open Model Zoo converts a PyTorch model by running its ``pytorch_to_onnx.py`` with those arguments
(``--model-name`` the class or function, ``--import-module`` its module, ``--model-path`` folders
put first on sys.path, ``--weights`` a state dict, ``--model-param name=value`` constructor
arguments, ``--input-shapes``, ``--input-names``, ``--output-names``, ``--inputs-dtype``,
``--conversion-param name=value`` extra export arguments, ``--opset_version`` (11), ``--output-file``),
then Model Optimizer on that ONNX file. Here: the same export with ``torch.onnx.export`` (the
TorchScript exporter, as theirs), then the ovc backend reads the ONNX file as the model's
model_optimizer_args say. Prefixes of the option names are accepted, as argparse does.
"""

from __future__ import annotations

import ast
import importlib
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from omz_tools.errors import OmzError
from omz_tools.version import pip_install

OPTIONS = ("model-name", "import-module", "model-path", "weights", "input-shapes", "input-names", "output-names",
           "model-param", "conversion-param", "inputs-dtype", "opset_version", "output-file")
DTYPES = ("bool", "double", "float", "half", "int32", "int8", "long", "short", "uint8")


class PyTorchExportError(OmzError):
    """The PyTorch model cannot be built or exported; the message says why and what to try."""


@dataclass
class Export:
    model_name: str = ""
    import_module: str = ""
    output_file: str = ""
    model_paths: List[str] = field(default_factory=list)
    weights: Optional[str] = None
    input_shapes: list = field(default_factory=list)
    input_names: List[str] = field(default_factory=list)
    output_names: List[str] = field(default_factory=list)
    model_params: dict = field(default_factory=dict)
    conversion_params: dict = field(default_factory=dict)
    inputs_dtype: str = "float"
    opset_version: int = 11

    def call(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.model_params.items())
        extra = "".join(f", {k}={v!r}" for k, v in self.conversion_params.items())
        weights = f" with weights {self.weights}" if self.weights else ""
        return (f"torch.onnx.export({self.import_module}.{self.model_name}({params}){weights}, "
                f"zeros {self.input_shapes} ({self.inputs_dtype}), {self.output_file!r}, "
                f"input_names={self.input_names}, output_names={self.output_names}, "
                f"opset_version={self.opset_version}{extra})")


def _option(key: str) -> str:
    matches = [o for o in OPTIONS if o == key] or [o for o in OPTIONS if o.startswith(key)]
    if len(matches) != 1:
        raise PyTorchExportError(f"conversion_to_onnx_args: --{key} is {'ambiguous' if matches else 'unknown'} "
                                 f"(expected one of {', '.join('--' + o for o in OPTIONS)})")
    return matches[0]


def _literal(text: str, what: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise PyTorchExportError(f"conversion_to_onnx_args: {what}: {text!r} is not a Python literal "
                                 "(string values need quotes)") from None


def _shapes(text: str) -> list:
    shapes = _literal(text, "--input-shapes")
    if not isinstance(shapes, (list, tuple)) or not shapes:
        raise PyTorchExportError(f"conversion_to_onnx_args: --input-shapes={text}: expected shapes such as 1,3,224,224")
    if not all(isinstance(s, (list, tuple)) for s in shapes):
        shapes = (shapes,)
    return [list(s) for s in shapes]


def plan(model, download_dir: Path, output_dir: Path) -> Export:
    """The export ``model``'s conversion_to_onnx_args describe, with the registry's $variables expanded."""
    variables = {"config_dir": str(model.config_dir), "dl_dir": str(Path(download_dir) / model.subdirectory),
                 "conv_dir": str(Path(output_dir) / model.subdirectory)}
    export = Export()
    for raw in model.conversion_to_onnx_args or []:
        arg = string.Template(raw).safe_substitute(variables)
        key, eq, value = arg.lstrip("-").partition("=")
        if not arg.startswith("--") or not eq:
            raise PyTorchExportError(f"conversion_to_onnx_args: expected --name=value, found {raw!r}")
        key = _option(key)
        if key in ("model-param", "conversion-param"):
            name, eq, text = value.partition("=")
            target = export.model_params if key == "model-param" else export.conversion_params
            target[name.strip()] = _literal(text, f"--{key}={name}")
        elif key == "model-path":
            export.model_paths.append(value)
        elif key == "input-shapes":
            export.input_shapes = _shapes(value)
        elif key in ("input-names", "output-names"):
            setattr(export, key.replace("-", "_"), value.split(","))
        elif key == "opset_version":
            if not (value.isascii() and value.isdigit() and int(value) > 0):
                raise PyTorchExportError(f"conversion_to_onnx_args: --opset_version={value}: expected a positive "
                                         "whole number (an ONNX opset, e.g. 11)")
            export.opset_version = int(value)
        elif key == "inputs-dtype":
            if value not in DTYPES:
                raise PyTorchExportError(f"conversion_to_onnx_args: --inputs-dtype={value}: expected one of "
                                         f"{', '.join(DTYPES)}")
            export.inputs_dtype = value
        else:
            setattr(export, key.replace("-", "_"), value)
    missing = [o for o in ("model-name", "import-module", "output-file", "input-shapes", "input-names",
                           "output-names") if not getattr(export, o.replace("-", "_"))]
    if missing:
        raise PyTorchExportError(f"conversion_to_onnx_args lack {', '.join('--' + m for m in missing)} "
                                 f"({model.config_dir / 'model.yml'})")
    return export


def _build(torch, export: Export):
    saved = list(sys.path)
    sys.path[:0] = export.model_paths
    try:
        module = importlib.import_module(export.import_module)
        creator = getattr(module, export.model_name)
        net = creator(**export.model_params)
    except ImportError as exc:
        where = f" in {', '.join(export.model_paths)}" if export.model_paths else " (is it installed?)"
        raise PyTorchExportError(f"cannot import {export.import_module}{where}: {exc}") from None
    except AttributeError:
        raise PyTorchExportError(f"module {export.import_module} has no class or function {export.model_name}") from None
    except Exception as exc:  # noqa: BLE001 - the model's own code: one message
        raise PyTorchExportError(f"{export.import_module}.{export.model_name}(**{export.model_params}) failed: "
                                 f"{type(exc).__name__}: {exc}") from None
    finally:
        sys.path[:] = saved
    if export.weights:
        try:
            net.load_state_dict(torch.load(export.weights, map_location="cpu"))
        except Exception as exc:  # noqa: BLE001 - unpickling and shape mismatches raise many types
            raise PyTorchExportError(f"the weights {export.weights} do not load into {export.model_name}: "
                                     f"{' '.join(str(exc).split())[:400]}") from None
    return net


def export(export: Export) -> Path:
    """Build the model, load its weights, write the ONNX file; its path."""
    try:
        import torch
    except ImportError as exc:
        raise PyTorchExportError(f"PyTorch models need torch in {sys.executable} ({exc}): {pip_install('pytorch')} "
                                 "(a CPU build of torch is enough), or convert with --backend mo after exporting to ONNX yourself") from None
    net = _build(torch, export)
    net.eval()
    dtype = getattr(torch, export.inputs_dtype)
    dummy = tuple(torch.zeros(shape, dtype=dtype) for shape in export.input_shapes)
    target = Path(export.output_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad():
            net(*dummy)
            torch.onnx.export(net, dummy, str(target), opset_version=export.opset_version, dynamo=False,
                              input_names=export.input_names, output_names=export.output_names,
                              **export.conversion_params)
    except Exception as exc:  # noqa: BLE001 - tracing and export raise many types
        raise PyTorchExportError(f"torch.onnx.export of {export.model_name} failed: {type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())[:400]}") from None
    return target
