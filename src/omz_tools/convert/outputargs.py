"""Where a conversion writes is the converter's choice, never the registry's: ``model_optimizer_args``
may not set Model Optimizer's output folder (``--output_dir``/``-o``), a dump folder of its own
(``--tensorboard_logdir``), or a ``--model_name``/``-n`` that is not a plain file name (MO joins it to
its output folder, so ``../../X`` writes outside ``-o``); and ``conversion_to_onnx_args`` may write the
ONNX export (``--output-file``) only as ``$conv_dir/<relative path>``, inside the model's folder of
``-o``. Checked once, in the plan, for every backend.

Options are matched as Model Optimizer 2024.6's argparse matches them (its option table is frozen: it
is the last release): ``--opt=value`` or ``--opt value``, any unambiguous prefix of a long option
(``--output_`` is the shortest for ``--output_dir``, ``--mo`` for ``--model_name``; OMZ's own
registry relies on prefixes, e.g. ``--input_meta``), and the short forms ``-o X``, ``-o=X``, ``-oX``."""

from __future__ import annotations

from typing import Optional, Sequence

from omz_tools.registry.schema import RE_MODEL_NAME

# Long option -> the shortest prefix MO 2024.6's parser resolves to it alone.
_REFUSED = {"--output_dir": "--output_", "--tensorboard_logdir": "--tensorb"}
_MODEL_NAME, _MODEL_NAME_PREFIX = "--model_name", "--mo"
_SHORT = {"o": "--output_dir", "n": _MODEL_NAME}
_MAX_NAME = 200


def _long(option: str) -> Optional[str]:
    """The output-related long option ``option`` (no value) stands for, or None."""
    for full, shortest in (*_REFUSED.items(), (_MODEL_NAME, _MODEL_NAME_PREFIX)):
        if full.startswith(option) and len(option) >= len(shortest):
            return full
    return None


def options(args: Sequence[str]):
    """Yield (option, value, spelled) for each output-related option in ``args``: the long option it
    stands for, its value (None when it is the last argument: MO then fails, writing nothing) and
    the argument(s) as written."""
    args = [str(arg) for arg in args]
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            full = _long(name)
            if full is None:
                continue
        elif arg.startswith("-") and len(arg) > 1 and arg[1] in _SHORT:
            full, rest = _SHORT[arg[1]], arg[2:]
            eq, value = "=" if rest else "", rest[1:] if rest.startswith("=") else rest
        else:
            continue
        if eq:
            yield full, value, arg
        elif i + 1 < len(args):
            yield full, args[i + 1], f"{arg} {args[i + 1]}"
        else:
            yield full, None, arg


def _name_problem(value: Optional[str]) -> str:
    if not value:
        return "gives an empty model name"
    if "/" in value or "\\" in value:
        return "is a path, not a plain file name"
    if value in (".", ".."):
        return f"is {value!r}, not a file name"
    if not RE_MODEL_NAME.fullmatch(value) or value.startswith(".") or len(value) > _MAX_NAME:
        return (f"is not a plain file name (one of letters, digits, '.', '_' and '-', not starting with '.', "
                f"at most {_MAX_NAME} characters)")
    return ""


def refusal(args: Sequence[str]) -> str:
    """Why the registry arguments ``args`` may not be used (empty when they may): the first one
    that sets where output goes, quoted, and the reason (the text reporters escape what it quotes)."""
    for full, value, spelled in options(args):
        if full == "--output_dir":
            why = "sets Model Optimizer's output folder"
        elif full == "--tensorboard_logdir":
            why = "makes Model Optimizer write a dump into a folder of its own"
        else:
            why = _name_problem(value)
            if not why:
                continue
            why += ": Model Optimizer names the IR's files with it, inside its output folder"
        return f"'{spelled}' {why}"
    return ""


def model_name(args: Sequence[str], default: str) -> str:
    """The name Model Optimizer gives the IR's files for ``args``: its last ``--model_name``/``-n``
    (argparse keeps the last value), else ``default``."""
    names = [value for full, value, _ in options(args) if full == _MODEL_NAME and value]
    return names[-1] if names else default


_ONNX_OUTPUT, _ONNX_OUTPUT_PREFIX = "--output-file", "--output-f"  # pytorch_to_onnx.py's argparse
_CONV_DIR = ("$conv_dir/", "${conv_dir}/")


def _inside_conv_dir(value: str) -> bool:
    from pathlib import PurePosixPath
    prefix = next((p for p in _CONV_DIR if value.startswith(p)), None)
    if prefix is None:
        return False
    rest = value[len(prefix):]
    parts = PurePosixPath(rest).parts
    return bool(parts) and not rest.startswith("/") and ".." not in parts and "$" not in rest and "\\" not in rest


def onnx_refusal(args: Sequence[str]) -> str:
    """Why ``conversion_to_onnx_args`` ``args`` may not be used (empty when they may): an
    ``--output-file`` that is not ``$conv_dir/<relative path>``."""
    args = [str(arg) for arg in args]
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if not (name.startswith("--") and _ONNX_OUTPUT.startswith(name) and len(name) >= len(_ONNX_OUTPUT_PREFIX)):
            continue
        spelled = arg
        if not eq:
            value = args[i + 1] if i + 1 < len(args) else ""
            spelled = f"{arg} {value}" if i + 1 < len(args) else arg
        if not _inside_conv_dir(value):
            return (f"'{spelled}' puts the ONNX export outside the model's folder of -o (expected "
                    f"$conv_dir/<relative path>, as Open Model Zoo's models give it)")
    return ""
