"""Model Optimizer's input preprocessing on an ``openvino.Model``, with ``openvino.preprocess.PrePostProcessor``.

The semantics are Model Optimizer 2024.6's for the front ends it shares with ``openvino.convert_model``
(ONNX, TensorFlow, PaddlePaddle): keys name an input by any of its tensor names or its friendly
name; an unnamed value belongs to the only input; ``--scale`` replaces ``--scale_values`` on every
input; where 3 mean/scale values or ``--reverse_input_channels`` need the channel axis and no layout
says it, the only dimension of size 3 at a channel position (1 or last) is taken, as MO guesses,
and such a guessed layout is not written to the IR. Steps in MO's order: layouts, reverse channels,
mean, scale. ``describe`` gives the same steps as text without a model (for --dry_run).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from omz_tools.convert.mo_cli_args import MOArgs, MOArgumentError

# where Model Optimizer looks for the channel axis it guesses, by rank (the native Caffe front end uses it too)
CHANNEL_POSITIONS = {3: (0, 2), 4: (1, 3), 5: (1, 4)}


def channel_guess(dims: Sequence[int], channels: int) -> Optional[str]:
    """MO's guess of a layout: '?C??' with C at the one dimension of size ``channels`` (-1: unknown), if that
    is at a channel position of ``CHANNEL_POSITIONS``; None otherwise."""
    found = [i for i, d in enumerate(dims) if d == channels]
    if len(found) != 1 or found[0] not in CHANNEL_POSITIONS.get(len(dims), ()):
        return None
    return "".join("C" if i == found[0] else "?" for i in range(len(dims)))


def describe(args: MOArgs) -> List[str]:
    """The PrePostProcessor calls ``apply`` makes, in order (channel axes guessed later are said so)."""
    steps = []
    for name, (source, target) in args.layouts.items():
        where = name or "the input"
        if source:
            steps.append(f"{where}: model().set_layout({source})")
        if target:
            steps.append(f"{where}: tensor().set_layout({target})")
    if args.reverse_input_channels:
        steps.append("each input with 3 channels: preprocess().reverse_channels()")
    names = list(dict.fromkeys([*args.mean_values, *args.scale_values]))
    for name in names:
        where = name or "the input"
        if name in args.mean_values:
            steps.append(f"{where}: preprocess().mean({args.mean_values[name]})")
        if args.scale is None and name in args.scale_values:
            steps.append(f"{where}: preprocess().scale({args.scale_values[name]})")
    if args.scale is not None:
        steps.append(f"every input: preprocess().scale({args.scale})")
    return steps


def _first_name(port) -> str:
    names = sorted(port.get_tensor().get_names())
    return names[0] if names else port.get_node().get_friendly_name()


def _find(model, name: str, what: str, outputs: bool = False):
    ports = list(model.inputs) + (list(model.outputs) if outputs else [])
    if name == "":
        if len(model.inputs) != 1:
            raise MOArgumentError(f"an unnamed {what} needs a model with one input; this one has "
                                  f"{len(model.inputs)} ({', '.join(_first_name(p) for p in model.inputs)}): "
                                  "name the input")
        return model.inputs[0], True
    for port in ports:  # a TensorFlow operation's name stands for its tensor ':0' in MO's arguments
        names = port.get_tensor().get_names()
        if name in names or f"{name}:0" in names or name == port.get_node().get_friendly_name():
            return port, port in model.inputs
    raise MOArgumentError(f"{what} names {name!r}, which is not an input{' or output' if outputs else ''} of the "
                          f"converted model (inputs: {', '.join(_first_name(p) for p in model.inputs)})")


def _guess_channels(port, name: str, channels: int) -> Optional[str]:
    """MO's guess: the one dimension of ``channels`` at a channel position; None if there is none."""
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic:
        return None
    return channel_guess([d.get_length() if d.is_static else -1 for d in shape], channels)


def _mean_scale(model, args: MOArgs) -> Dict[str, dict]:
    values: Dict[str, dict] = {}
    for kind, given in (("mean", args.mean_values), ("scale", args.scale_values)):
        for name, numbers in given.items():
            port, _ = _find(model, name, f"--{kind}_values")
            values.setdefault(_first_name(port), {"port": port}).update({kind: numbers})
    if args.scale is not None:
        for port in model.inputs:
            values.setdefault(_first_name(port), {"port": port})["scale"] = [args.scale]
    return values


def _channels_ok(layout, port) -> bool:
    from openvino import layout_helpers
    if not layout_helpers.has_channels(layout) or port.get_partial_shape().rank.is_dynamic:
        return False
    index, rank = layout_helpers.channels_idx(layout), port.get_partial_shape().rank.get_length()
    if not -rank <= index < rank:  # a layout of another rank: PrePostProcessor's build says so
        return False
    dim = port.get_partial_shape()[index if index >= 0 else index + rank]
    return dim.is_dynamic or dim.get_length() == 3


def apply(model, args: MOArgs):
    """``model`` with MO's preprocessing for ``args`` (the same object when there is none)."""
    if not (args.layouts or args.reverse_input_channels or args.mean_values or args.scale_values or args.scale):
        return model
    from openvino import Layout
    from openvino.preprocess import PrePostProcessor
    layouts: Dict[str, dict] = {}  # first tensor name -> source, target, is_input, port, guessed
    for name, (source, target) in args.layouts.items():
        port, is_input = _find(model, name, "--layout", outputs=True)
        _check_layouts(name, source, target)
        layouts[_first_name(port)] = {"source": source, "target": target, "input": is_input, "port": port}
    values = _mean_scale(model, args)
    for key, item in values.items():
        channels = max(len(item.get("mean", [])), len(item.get("scale", [])))
        if channels <= 1 or key in layouts or not _param(model, item["port"]).layout.empty:
            continue
        guessed = _guess_channels(item["port"], key, channels) if channels == 3 else None
        if guessed is None:
            raise MOArgumentError(f"cannot tell the channel axis of input {key} (shape {item['port'].get_partial_shape()}) "
                                  f"for {channels} mean/scale values; give its layout with --layout")
        layouts[key] = {"source": guessed, "target": "", "input": True, "port": item["port"], "guessed": True}
    reverse = _reverse_targets(model, layouts) if args.reverse_input_channels else []
    ppp = PrePostProcessor(model)
    for key, item in layouts.items():
        side = ppp.input(key) if item["input"] else ppp.output(key)
        if item["source"]:
            side.model().set_layout(Layout(item["source"]))
        if item["target"]:
            side.tensor().set_layout(Layout(item["target"]))
    for key in reverse:
        ppp.input(key).preprocess().reverse_channels()
    for key, item in values.items():
        if "mean" in item:
            ppp.input(key).preprocess().mean(item["mean"] if len(item["mean"]) > 1 else item["mean"][0])
        if "scale" in item:
            ppp.input(key).preprocess().scale(item["scale"] if len(item["scale"]) > 1 else item["scale"][0])
    model = _build(ppp)
    if any(item.get("guessed") and not item["target"] for item in layouts.values()):
        # MO clears the layout of every parameter then, not only the guessed one (its loop does).
        for param in model.get_parameters():
            param.layout = Layout()
    return model


def _check_layouts(name: str, *texts: str) -> None:
    """A layout OpenVINO cannot read, said as the argument's fault (not OpenVINO's RuntimeError)."""
    from openvino import Layout
    for text in texts:
        try:
            Layout(text) if text else None
        except (RuntimeError, ValueError, TypeError):  # non-ASCII text: a cut UTF-8 quote, a lone surrogate
            raise MOArgumentError(f"--layout for {name or 'the input'}: {text!r} is not a layout OpenVINO understands "
                                  "(expected one letter per dimension, each at most once, e.g. NCHW, [N,C,H,W] or "
                                  "?C??)") from None


def _build(ppp):
    try:
        return ppp.build()
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        said = " ".join(line for line in lines if not line.startswith(("Check '", "Exception from"))) or lines[0]
        raise MOArgumentError(f"the inputs' preprocessing (layout, reverse, mean, scale) failed in OpenVINO: "
                              f"{said[:400]}") from None


def _param(model, port):
    return model.get_parameters()[list(model.inputs).index(port)]


def _reverse_targets(model, layouts: Dict[str, dict]) -> List[str]:
    from openvino import Layout
    suitable = []
    for port in model.inputs:
        key, param = _first_name(port), _param(model, port)
        if not param.layout.empty:
            ok = _channels_ok(param.layout, port)
        elif key in layouts:
            ok = bool(layouts[key]["source"]) and _channels_ok(Layout(layouts[key]["source"]), port)
        else:
            guessed = _guess_channels(port, key, 3)
            if guessed is not None:
                layouts[key] = {"source": guessed, "target": "", "input": True, "port": port, "guessed": True}
            ok = guessed is not None and _channels_ok(Layout(guessed), port)
        if ok:
            suitable.append(key)
    if not suitable:
        shapes = ", ".join(f"{_first_name(p)} {p.get_partial_shape()}" for p in model.inputs)
        raise MOArgumentError(f"--reverse_input_channels: no input has 3 channels at a channel position ({shapes}); "
                              "give the layout with --layout or drop the argument")
    return suitable
