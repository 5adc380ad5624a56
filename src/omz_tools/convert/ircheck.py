"""Checks of a written IR against the registry entry and its ``model_card``.

- input/output names and shapes (``model_card.inputs/outputs``, and ``input_info`` if given);
- parameter count: the elements of every Constant of the IR, compared with ``mparams`` rounded to
  3 decimals (se-resnet-101: exactly 49.274 M);
- GFLOPs: 2 x the multiply-adds of Convolution, GroupConvolution and MatMul, against ``gflops``
  within GFLOPS_TOLERANCE (the card counts a few more ops: se-resnet-101 gives 15.15 vs 15.239);
- no static tensor above ``bounds.TENSOR_MAX_SIZE`` (checked before compiling: the size a net's
  layers ask for is not bounded by its files' size);
- one inference on a random input; outputs of kind ``probabilities`` must be non-negative and sum
  to 1 (within PROBABILITY_TOLERANCE) per batch item.
Imports openvino lazily (only when a check runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

GFLOPS_TOLERANCE = 0.02  # relative
PROBABILITY_TOLERANCE = 1e-3  # absolute, on the sum of a probability vector


@dataclass
class Figures:
    inputs: dict = field(default_factory=dict)  # name -> shape (list; -1 for dynamic)
    outputs: dict = field(default_factory=dict)
    params: int = 0
    gflops: float = 0.0

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def _shape(partial_shape) -> list:
    return [d.get_length() if d.is_static else -1 for d in partial_shape]


def _names(port) -> list:
    return sorted(port.get_names()) or [port.get_any_name()]


def analyse(ov_model) -> Figures:
    """Names, shapes, parameter count and GFLOPs of an ``openvino.Model``."""
    import numpy as np
    figures = Figures()
    for port in ov_model.inputs:
        for name in _names(port):
            figures.inputs[name] = _shape(port.get_partial_shape())
    for port in ov_model.outputs:
        for name in _names(port):
            figures.outputs[name] = _shape(port.get_partial_shape())
    macs = 0
    for op in ov_model.get_ops():
        kind = op.get_type_name()
        if kind == "Constant":
            figures.params += int(np.prod(list(op.get_output_shape(0)), dtype=np.int64))
        elif kind in ("Convolution", "GroupConvolution") and op.get_output_partial_shape(0).is_static:
            out = list(op.get_output_shape(0))
            weights = list(op.input_value(1).get_partial_shape().get_shape())
            # Convolution weights [O, I, k...]; GroupConvolution [G, O/G, I/G, k...]
            per_output = weights[1:] if kind == "Convolution" else weights[2:]
            macs += int(np.prod(out, dtype=np.int64)) * int(np.prod(per_output, dtype=np.int64))
        elif kind == "MatMul" and op.get_output_partial_shape(0).is_static:
            a = list(op.input_value(0).get_partial_shape().get_shape())
            k = a[-2] if op.get_transpose_a() and len(a) > 1 else a[-1]
            macs += int(np.prod(list(op.get_output_shape(0)), dtype=np.int64)) * int(k)
    figures.gflops = 2 * macs / 1e9
    return figures


def expected_ports(model, kind: str) -> dict:
    """name -> shape (or None) from model_card.<kind> and, for inputs, input_info."""
    expected = {}
    if kind == "inputs":
        for info in model.input_info:
            expected[info.name] = list(info.shape) if info.shape else None
    for entry in model.model_card.get(kind, []) or []:
        if isinstance(entry, dict) and "name" in entry:
            expected[entry["name"]] = list(entry["shape"]) if entry.get("shape") else expected.get(entry["name"])
    return expected


def check_figures(model, figures: Figures, *, counts: bool = True) -> list:
    """Problems (one sentence each) comparing ``figures`` with the registry and the card."""
    problems = []
    for kind, found in (("inputs", figures.inputs), ("outputs", figures.outputs)):
        for name, shape in expected_ports(model, kind).items():
            if name not in found:
                problems.append(f"{kind[:-1]} '{name}' is missing (the IR has {', '.join(sorted(found)) or 'none'})")
            elif shape is not None and found[name] != shape:
                problems.append(f"{kind[:-1]} '{name}' has shape {found[name]}, expected {shape}")
    card = model.model_card
    if counts and "mparams" in card:
        want = round(float(card["mparams"]), 3)
        got = round(figures.mparams, 3)
        if got != want:
            problems.append(f"parameter count is {got:.3f} M (Constant elements of the IR), expected "
                            f"{want:.3f} M (model_card.mparams)")
    if counts and "gflops" in card:
        want = float(card["gflops"])
        if want > 0 and abs(figures.gflops - want) > GFLOPS_TOLERANCE * want:
            problems.append(f"GFLOPs estimate is {figures.gflops:.3f} (2 x Convolution/MatMul multiply-adds), "
                            f"expected {want:.3f} +/- {GFLOPS_TOLERANCE:.0%} (model_card.gflops)")
    return problems


def check_inference(model, compiled, seed: int = 0) -> list:
    """Run one inference on random input; check outputs of kind ``probabilities``."""
    import numpy as np
    rng = np.random.default_rng(seed)
    inputs = {}
    for port in compiled.inputs:
        shape = [d if d > 0 else 1 for d in _shape(port.get_partial_shape())]
        dtype = port.get_element_type().to_dtype()
        # Raw 0-255 image values, drawn as float32 (not float64: half the memory of a big input).
        values = rng.random(shape, dtype=np.float32)
        values *= 255
        inputs[port.get_any_name()] = values.astype(dtype, copy=False)
    results = compiled(inputs)
    kinds = {e["name"]: e.get("kind") for e in model.model_card.get("outputs", []) or []
             if isinstance(e, dict) and "name" in e}
    problems = []
    for port in compiled.outputs:
        names = _names(port)
        value = np.asarray(results[port], dtype=np.float64)
        label = names[0]
        if not np.all(np.isfinite(value)):
            problems.append(f"output '{label}' holds non-finite values on a random input")
            continue
        if any(kinds.get(n) == "probabilities" for n in names):
            rows = value.reshape(value.shape[0], -1) if value.ndim > 1 else value.reshape(1, -1)
            if value.min() < 0:
                problems.append(f"output '{label}' (probabilities) has a negative value {value.min():.3g}")
            sums = rows.sum(axis=1)
            worst = float(np.max(np.abs(sums - 1.0)))
            if worst > PROBABILITY_TOLERANCE:
                problems.append(f"output '{label}' (probabilities) sums to {sums.tolist()[:4]}, expected 1 "
                                f"+/- {PROBABILITY_TOLERANCE}")
    return problems


def _refuse_oversized(model, ov_model, xml: Path) -> None:
    """Before compiling: every static tensor within bounds.TENSOR_MAX_SIZE, else one BoundError."""
    from omz_tools.convert import bounds
    sentence = bounds.oversized_tensor(ov_model)
    if sentence is not None:
        files = ", ".join(f.name.as_posix() for f in model.files) or str(xml)
        raise bounds.BoundError(
            f"the converted IR ({xml.name}, from {files}) is not compiled nor run for its check: {sentence} "
            f"No IR was installed.")


def check_ir(model, xml: Path, core=None, *, counts: bool = True, infer: bool = True,
             figures: Optional[Figures] = None) -> tuple:
    """(figures, problems) for the IR at ``xml``."""
    from omz_tools.convert import runtime
    with runtime.LOCK:  # one thread at a time inside OpenVINO (see runtime.py)
        core = core or runtime.core()
        ov_model = core.read_model(str(xml))
        figures = figures or analyse(ov_model)
        problems = check_figures(model, figures, counts=counts)
        if infer and not problems:
            _refuse_oversized(model, ov_model, xml)
            compiled = core.compile_model(ov_model, "CPU")
            problems += check_inference(model, compiled)
            del compiled
    return figures, problems
