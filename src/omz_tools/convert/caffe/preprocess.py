"""Model Optimizer's input preprocessing on a built model: layout, reverse channels, mean, scale.

The steps are OpenVINO's PrePostProcessor steps, the ones Model Optimizer 2024.6 itself inserts
(openvino/tools/mo/back/preprocessing.py), in its order whatever the command line's: the model's
and the tensor's layouts, then ``reverse_channels``, then ``mean``, then ``scale`` (a division).
Without a layout the channel axis is guessed as MO does: the one dimension (1 or 3 of a 4-D input,
0 or 2 of a 3-D one, 1 or 4 of a 5-D one) whose size is the number of mean/scale values, or 3 for
reversing; a guessed layout is not kept on the model. A layout given is kept on the inputs (MO 2024.6's IR
keeps none: measured), the tensor's where a target layout is given. MO pairs unnamed value lists with the inputs
after sorting the lists by their first value (cli_parser.parse_tuple_pairs); here the n-th list is
for the n-th input, which is what its documentation says.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from omz_tools.convert.ovc_preprocess import CHANNEL_POSITIONS, channel_guess

from .errors import CaffeConversionError
from .mo_args import Options
from .opset import Layout, Model


def _values_per_input(options: Options, names: List[str], table: str) -> Dict[str, List[float]]:
    named = dict(getattr(options, table))
    unnamed = getattr(options, table.replace("_values", "_list"))
    if unnamed:
        targets = options.inputs or names
        if len(unnamed) != len(targets):
            raise CaffeConversionError(f"--{table} gives {len(unnamed)} unnamed list(s) for {len(targets)} input(s) "
                                       f"({', '.join(targets)}); name the inputs (e.g. {targets[0]}[...]) or give "
                                       "one list per input")
        named.update(zip(targets, unnamed))
    for name in named:
        if name not in names:
            raise CaffeConversionError(f"--{table}: the network has no input named {name!r} "
                                       f"(its inputs: {', '.join(names)})")
    return named


def _layouts(options: Options, names: List[str]) -> Dict[str, tuple]:
    layouts = dict(options.layouts)
    if "" in layouts:
        if len(names) != 1:
            given = layouts[""][0] or layouts[""][1]
            raise CaffeConversionError(f"--layout={given}: a layout without an input name needs a network with "
                                       f"one input, found {len(names)} ({', '.join(names)}); write "
                                       f"{names[0]}({given})")
        layouts[names[0]] = layouts.pop("")
    for name in layouts:
        if name not in names:
            raise CaffeConversionError(f"--layout: the network has no input named {name!r} (its inputs: "
                                       f"{', '.join(names)}); layouts of outputs are not supported by the native "
                                       "Caffe front end")
    return layouts


def _guess_channels(name: str, shape: List[int], count: int, why: str) -> str:
    """MO's guess: '?C??' with C at the one dimension of size ``count`` (only where MO allows it)."""
    guess = channel_guess(shape, count)
    if guess is None:
        found = [i for i, d in enumerate(shape) if d == count]
        allowed = CHANNEL_POSITIONS.get(len(shape), ())
        raise CaffeConversionError(
            f"{why}: cannot tell the channel axis of input {name!r} with shape {shape} (expected exactly one "
            f"dimension of size {count} at position {' or '.join(map(str, allowed)) or '-'}, found "
            f"{len(found)}); give it with --layout={name}(NCHW)")
    return guess


def _channel_count(layout: str, shape: List[int]) -> Optional[int]:
    parsed = Layout(layout)
    from openvino import layout_helpers
    if not layout_helpers.has_channels(parsed):
        return None
    index = layout_helpers.channels_idx(parsed)
    return shape[index] if -len(shape) <= index < len(shape) else None


def _check_rank(name: str, layout: Optional[str], shape: List[int]) -> None:
    """A layout of another rank than its input's: said here, not in OpenVINO's words at build time."""
    if not layout:
        return
    try:
        text = Layout(layout).to_string().strip("[]")
    except (RuntimeError, ValueError, TypeError):  # non-ASCII text: a cut UTF-8 quote, a lone surrogate
        raise CaffeConversionError(f"--layout={name}({layout}): not a layout OpenVINO understands (expected one "
                                   "letter per dimension, each at most once, e.g. NCHW, [N,C,H,W] or ?C??)") from None
    rank = len(text.split(",")) if text else 0
    if "..." not in text and rank != len(shape):
        raise CaffeConversionError(f"--layout={name}({layout}): {rank} dimensions, but input {name!r} has shape "
                                   f"{shape} ({len(shape)} dimensions)")


def _plan(options: Options, model: Model) -> Dict[str, dict]:
    """Per input: its source/target layout, whether guessed, reverse, mean and scale."""
    names = [param.output(0).get_any_name() for param in model.get_parameters()]
    shapes = {n: [int(d) for d in p.get_partial_shape().to_shape()] for n, p in zip(names, model.get_parameters())}
    means, scales = _values_per_input(options, names, "mean_values"), _values_per_input(options, names, "scale_values")
    if options.scale is not None:
        scales = {name: [options.scale] for name in names}
    layouts = _layouts(options, names)
    plan = {}
    for name in names:
        source, target = layouts.get(name, (None, None))
        _check_rank(name, source, shapes[name])
        _check_rank(name, target, shapes[name])
        step = {"source": source, "target": target, "guessed": False, "mean": means.get(name),
                "scale": scales.get(name), "reverse": False}
        counts = {len(v) for v in (step["mean"], step["scale"]) if v is not None and len(v) > 1}
        if len(counts) > 1:
            raise CaffeConversionError(f"--mean_values and --scale_values give {' and '.join(map(str, sorted(counts)))}"
                                       f" values for input {name!r}; expected as many of each (or one)")
        if counts and source is None:
            step["source"], step["guessed"] = _guess_channels(name, shapes[name], counts.pop(),
                                                              "--mean_values/--scale_values"), True
        plan[name] = step
    if options.reverse_input_channels:
        _plan_reverse(plan, shapes)
    for name, step in plan.items():
        channels = _channel_count(step["source"], shapes[name]) if step["source"] else None
        for what in ("mean", "scale"):
            values = step[what]
            if values is not None and len(values) > 1 and channels != len(values):
                raise CaffeConversionError(f"--{what}_values: {len(values)} values for input {name!r} with "
                                           f"{channels} channels (shape {shapes[name]}, layout {step['source']})")
    return plan


def _plan_reverse(plan: Dict[str, dict], shapes: Dict[str, List[int]]) -> None:
    """MO reverses every input with 3 channels (by its layout, or the one dimension of size 3)."""
    for name, step in plan.items():
        if step["source"]:
            step["reverse"] = _channel_count(step["source"], shapes[name]) == 3
            continue
        try:
            layout = _guess_channels(name, shapes[name], 3, "--reverse_input_channels")
        except CaffeConversionError:
            continue
        step["source"], step["guessed"], step["reverse"] = layout, True, True
    if not any(step["reverse"] for step in plan.values()):
        raise CaffeConversionError(
            "--reverse_input_channels: none of the inputs has 3 channels ("
            + ", ".join(f"{name} {shapes[name]}" for name in plan) + "); give the channel axis with --layout or drop "
            "the argument")


def _scalar_or_list(values: List[float]):
    return float(values[0]) if len(values) == 1 else [float(v) for v in values]


def preprocess(model: Model, options: Options) -> Model:
    """``model`` with MO's preprocessing of ``options`` on its inputs (the same model if none)."""
    plan = _plan(options, model)
    if not any(s["source"] or s["target"] or s["mean"] or s["scale"] for s in plan.values()):
        return model
    from openvino.preprocess import PrePostProcessor
    ppp = PrePostProcessor(model)
    for name, step in plan.items():
        item = ppp.input(name)
        try:
            if step["source"]:
                item.model().set_layout(Layout(step["source"]))
            if step["target"]:
                item.tensor().set_layout(Layout(step["target"]))
        except (RuntimeError, ValueError, TypeError) as exc:
            raise CaffeConversionError(f"--layout for input {name!r}: not a layout OpenVINO understands "
                                       f"({str(exc).strip().splitlines()[0]})") from None
        if step["reverse"]:
            item.preprocess().reverse_channels()
        if step["mean"] is not None:
            item.preprocess().mean(_scalar_or_list(step["mean"]))
        if step["scale"] is not None:
            item.preprocess().scale(_scalar_or_list(step["scale"]))
    try:
        model = ppp.build()
    except RuntimeError as exc:
        raise CaffeConversionError(f"the inputs' preprocessing (layout, reverse, mean, scale) failed in OpenVINO: "
                                   f"{str(exc).strip().splitlines()[0]}") from None
    for param in model.get_parameters():
        step = plan.get(param.output(0).get_any_name())
        if step and step["guessed"] and not step["target"]:
            param.set_layout(Layout())
    return model
