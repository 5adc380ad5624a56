"""Validation of model.yml and composite-model.yml data into the records of :mod:`.schema`.

Every problem raises :class:`~omz_tools.registry.schema.RegistryError` naming the file, the model,
the key path, what was expected and what was found.
"""

from __future__ import annotations

import re
import string
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from omz_tools.registry.schema import (
    _RE_HEX, Checksum, CONVERTIBLE_PRECISIONS, FileSource, HASH_HEX_LENGTHS, HIDDEN_STATE_SUFFIXES,
    InputInfo, JSON_INT_LIMIT, KNOWN_FRAMEWORKS, KNOWN_PRECISIONS, KNOWN_TASK_TYPES, MO_VARIABLES,
    Model, MODEL_INFO_KINDS, ModelFile, RE_MODEL_NAME, RegexReplace,
    STATE_PREFIXES, STATE_SUFFIXES, UnpackArchive,
)
from omz_tools.registry.context import _Ctx, _q, _kind, _show


def _framework(ctx: _Ctx, value: Any) -> str:
    """Any framework name: known or not, the converter decides what it can convert."""
    ctx.string("framework", value)
    if not value or not value.isprintable() or len(value) > 100:
        raise ctx.error("framework", f"expected a framework name (e.g. {', '.join(sorted(KNOWN_FRAMEWORKS))}), "
                                     f"found {_show(value)}")
    return value


def _model_file_name(ctx: _Ctx, key: str, value: Any) -> PurePosixPath:
    path = ctx.relative_path(key, value)
    for part in path.parts:
        if part.startswith(STATE_PREFIXES) or part.endswith(STATE_SUFFIXES) or \
                (part.startswith(".") and part.endswith(HIDDEN_STATE_SUFFIXES)):
            raise ctx.error(key, "expected a name the tools do not keep their own state under (no part starting "
                                 "with '.omz_', none ending with '.part' or '.part.json', no hidden '.lock', "
                                 f"'.tmp' or '.unpacking' name), found {_q(value)}")
    return path


def _json_value(ctx: _Ctx, key: str, value: Any) -> None:
    """Refuse what JSON cannot hold as is: dates, sets, binary data, non-string keys, integers
    beyond 64 bits, NaN and infinities (the loader already refused recursive values)."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not -JSON_INT_LIMIT < value < JSON_INT_LIMIT:
            raise ctx.error(key, f"expected an integer of at most 64 bits, found {_show(value)}")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ctx.error(key, f"expected a finite number, found {_show(value)}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _json_value(ctx, f"{key}[{i}]", item)
    elif isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise ctx.error(key, f"expected a mapping with string keys, found the key {_show(name)}")
            _json_value(ctx, f"{key}.{name if name.isidentifier() else _q(name, 40)}", item)
    else:
        raise ctx.error(key, "expected a plain value (null, boolean, number, string, list or mapping), "
                             f"found {_show(value)}")


def _number(ctx: _Ctx, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
        raise ctx.error(key, f"expected a non-negative number, found {_show(value)}")
    return value


def _shape(ctx: _Ctx, key: str, value: Any) -> list:
    for i, dim in enumerate(ctx.list(key, value)):
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise ctx.error(f"{key}[{i}]", f"expected an integer (a dimension), found {_show(dim)}")
    return value


def _model_card(ctx: _Ctx, raw: Any) -> dict:
    card = ctx.mapping("model_card", raw)
    _json_value(ctx, "model_card", card)
    for figure in ("mparams", "gflops"):
        if figure in card:
            _number(ctx, f"model_card.{figure}", card[figure])
    if "accuracy" in card:
        for metric, value in ctx.mapping("model_card.accuracy", card["accuracy"]).items():
            _number(ctx, f"model_card.accuracy.{metric}", value)
    for kind in ("inputs", "outputs"):
        if kind not in card:
            continue
        for i, port in enumerate(ctx.list(f"model_card.{kind}", card[kind])):
            key = f"model_card.{kind}[{i}]"
            ctx.mapping(key, port)
            ctx.string(f"{key}.name", ctx.require(port, "name", key))
            if "shape" in port:
                _shape(ctx, f"{key}.shape", port["shape"])
            for text in ("layout", "channel_order", "kind"):
                if text in port:
                    ctx.string(f"{key}.{text}", port[text])
            if "mean_values" in port:
                for j, value in enumerate(ctx.list(f"{key}.mean_values", port["mean_values"])):
                    _number(ctx, f"{key}.mean_values[{j}]", value)
            if "mean_baked_in" in port and not isinstance(port["mean_baked_in"], bool):
                raise ctx.error(f"{key}.mean_baked_in", f"expected true or false, found {_show(port['mean_baked_in'])}")
    return card


def _model_info(ctx: _Ctx, raw: Any) -> dict:
    info = ctx.mapping("model_info", raw)
    _json_value(ctx, "model_info", info)
    for name, kind in MODEL_INFO_KINDS.items():
        if name not in info:
            continue
        if kind is float:
            _number(ctx, f"model_info.{name}", info[name])
        elif not isinstance(info[name], kind):
            raise ctx.error(f"model_info.{name}", f"expected a {_kind(kind())}, found {_show(info[name])}")
    return info


def _checksum(ctx: _Ctx, key: str, entry: dict) -> Checksum:
    if "sha256" in entry and "checksum" in entry:
        raise ctx.error(key, "expected one of 'checksum' or 'sha256', found both")
    if "sha256" in entry:
        algorithm, value, vkey = "sha256", entry["sha256"], f"{key}.sha256"
    elif "checksum" in entry:
        raw = entry["checksum"]
        if isinstance(raw, dict):
            algorithm = ctx.enum(f"{key}.checksum.$type", ctx.require(raw, "$type", f"{key}.checksum"),
                                 HASH_HEX_LENGTHS)
            value, vkey = ctx.require(raw, "value", f"{key}.checksum"), f"{key}.checksum.value"
        else:
            algorithm, value, vkey = "sha384", raw, f"{key}.checksum"
    else:
        raise ctx.error(key, "expected a 'checksum' (sha384) or 'sha256' key, found neither")
    ctx.string(vkey, value)
    want = HASH_HEX_LENGTHS[algorithm]
    if len(value) != want or not _RE_HEX.fullmatch(value):
        raise ctx.error(vkey, f"expected a {algorithm} hash ({want} hexadecimal digits), "
                              f"found {_q(value)} ({len(value)} characters)")
    return Checksum(algorithm, value.lower())


def _source(ctx: _Ctx, key: str, raw: Any) -> FileSource:
    if isinstance(raw, str):
        return FileSource("http", url=raw)
    ctx.mapping(key, raw)
    kind = ctx.enum(f"{key}.$type", ctx.require(raw, "$type", key), {"http", "google_drive"})
    if kind == "http":
        return FileSource("http", url=ctx.string(f"{key}.url", ctx.require(raw, "url", key)))
    return FileSource("google_drive", id=ctx.string(f"{key}.id", ctx.require(raw, "id", key)))


def _files(ctx: _Ctx, raw: Any) -> list:
    files, seen = [], set()
    for i, entry in enumerate(ctx.list("files", raw)):
        key = f"files[{i}]"
        ctx.mapping(key, entry)
        name = _model_file_name(ctx, f"{key}.name", ctx.require(entry, "name", key))
        if name in seen:
            raise ctx.error(f"{key}.name", f"expected a unique file name, found {_q(str(name))} twice")
        seen.add(name)
        size = ctx.nonneg_int(f"{key}.size", ctx.require(entry, "size", key))
        checksum = _checksum(ctx, key, entry)
        source = _source(ctx, f"{key}.source", ctx.require(entry, "source", key))
        files.append(ModelFile(name, size, checksum, source))
    for i, file in enumerate(files):
        for parent in file.name.parents:
            if parent in seen:
                raise ctx.error(f"files[{i}].name", f"expected a file outside the other files' paths, found "
                                f"{_q(str(file.name))} inside the file {_q(str(parent))}")
    return files


def _postprocessing(ctx: _Ctx, raw: Any) -> list:
    steps = []
    for i, entry in enumerate(ctx.list("postprocessing", raw)):
        key = f"postprocessing[{i}]"
        ctx.mapping(key, entry)
        kind = ctx.enum(f"{key}.$type", ctx.require(entry, "$type", key), {"regex_replace", "unpack_archive"})
        file = _model_file_name(ctx, f"{key}.file", ctx.require(entry, "file", key))
        if kind == "regex_replace":
            pattern_text = ctx.string(f"{key}.pattern", ctx.require(entry, "pattern", key))
            try:
                pattern = re.compile(pattern_text)
            except re.error as exc:
                raise ctx.error(f"{key}.pattern", f"expected a regular expression, found {_q(pattern_text)} ({exc})")
            steps.append(RegexReplace(
                file, pattern,
                ctx.string(f"{key}.replacement", ctx.require(entry, "replacement", key)),
                ctx.nonneg_int(f"{key}.count", entry.get("count", 0))))
        else:
            steps.append(UnpackArchive(file, ctx.enum(f"{key}.format", ctx.require(entry, "format", key),
                                                      {"zip", "tar", "gztar", "bztar", "xztar"})))
    return steps


def _template_args(ctx: _Ctx, key: str, raw: Any) -> list:
    args = []
    for i, arg in enumerate(ctx.list(key, raw)):
        ctx.string(f"{key}[{i}]", arg)
        for match in string.Template.pattern.finditer(arg):
            if match.group("invalid") is not None:
                raise ctx.error(f"{key}[{i}]", f"expected $name or ${{name}}, found a stray '$' in {_q(arg)}")
            var = match.group("named") or match.group("braced")
            if var is not None and var not in MO_VARIABLES:
                raise ctx.error(f"{key}[{i}]", f"expected one of the variables "
                                f"{', '.join('$' + v for v in sorted(MO_VARIABLES))}; found ${var} in {_q(arg)}")
        args.append(arg)
    return args


def _input_info(ctx: _Ctx, raw: Any) -> list:
    result = []
    for i, entry in enumerate(ctx.list("input_info", raw)):
        key = f"input_info[{i}]"
        ctx.mapping(key, entry)
        _json_value(ctx, key, entry)
        result.append(InputInfo(
            ctx.string(f"{key}.name", ctx.require(entry, "name", key)),
            _shape(ctx, f"{key}.shape", entry.get("shape", [])),
            ctx.string(f"{key}.layout", entry.get("layout", ""))))
    return result


def _precisions_from_ir_files(ctx: _Ctx, name: str, files: list) -> frozenset:
    per_precision: dict = {}
    for i, file in enumerate(files):
        parts = file.name.parts
        if len(parts) == 2 and parts[0].startswith("FP"):
            if parts[0] not in KNOWN_PRECISIONS:
                raise ctx.error(f"files[{i}].name", f"expected a precision folder "
                                f"({', '.join(sorted(KNOWN_PRECISIONS))}), found {_q(parts[0])}")
            per_precision.setdefault(parts[0], set()).add(parts[1])
    for precision, names in per_precision.items():
        for ext in ("xml", "bin"):
            if f"{name}.{ext}" not in names:
                raise ctx.error("files", f"expected {precision}/{name}.{ext} for precision {precision}, found none")
    return frozenset(per_precision)


def parse_model(data: Any, *, name: str, subdirectory: PurePosixPath, registry_root: Path, config: Path,
                composite_model_name: Optional[str] = None) -> Model:
    """Validate one parsed model.yml and build its :class:`Model`."""
    ctx = _Ctx(config, name)
    if not RE_MODEL_NAME.fullmatch(name):
        raise ctx.error("", f"expected a model folder name of letters, digits and . _ - only, found {_q(name)}")
    ctx.mapping("(top level)", data)
    for bad_key in ("name", "subdirectory"):
        if bad_key in data:
            raise ctx.error(bad_key, "expected no such key (the model folder's name and place define it), "
                                     f"found {_show(data[bad_key])}")
    files = _files(ctx, ctx.require(data, "files"))
    postprocessing = _postprocessing(ctx, data.get("postprocessing", []))
    framework = _framework(ctx, ctx.require(data, "framework"))
    input_info = _input_info(ctx, data.get("input_info", []))

    onnx_args = data.get("conversion_to_onnx_args")
    if KNOWN_FRAMEWORKS.get(framework):
        if not onnx_args:
            raise ctx.error("conversion_to_onnx_args", f"expected this key for framework {_q(framework)} "
                            "(it is converted to ONNX first), found none")
        onnx_args = _template_args(ctx, "conversion_to_onnx_args", onnx_args)
    elif onnx_args:
        raise ctx.error("conversion_to_onnx_args", f"expected none for framework {_q(framework)}, found some")
    else:
        onnx_args = None

    if "model_optimizer_args" in data:
        mo_args = _template_args(ctx, "model_optimizer_args", data["model_optimizer_args"])
        precisions = CONVERTIBLE_PRECISIONS
    else:
        if framework != "dldt":
            raise ctx.error("model_optimizer_args", f"expected this key for framework {_q(framework)} "
                            "(only dldt models are already IR), found none")
        mo_args = None
        precisions = _precisions_from_ir_files(ctx, name, files)

    model_info = _model_info(ctx, data.get("model_info", {}))
    model_card = _model_card(ctx, data.get("model_card", {}))
    quantizable = data.get("quantizable")

    return Model(
        name=name, subdirectory=subdirectory, registry_root=registry_root,
        framework=framework,
        description=ctx.string("description", ctx.require(data, "description")),
        license_url=ctx.string("license", ctx.require(data, "license")),
        task_type=ctx.enum("task_type", ctx.require(data, "task_type"), KNOWN_TASK_TYPES),
        precisions=precisions, files=files, postprocessing=postprocessing, mo_args=mo_args,
        conversion_to_onnx_args=onnx_args, input_info=input_info, model_info=model_info,
        model_card=model_card, quantizable=quantizable, composite_model_name=composite_model_name)


def parse_composite(data: Any, *, name: str, subdirectory: PurePosixPath, registry_root: Path, config: Path,
                    stages: list) -> Model:
    """Validate a composite-model.yml; ``stages`` are the already parsed stage models in stages_order."""
    ctx = _Ctx(config, name)
    if not RE_MODEL_NAME.fullmatch(name):
        raise ctx.error("", f"expected a model folder name of letters, digits and . _ - only, found {_q(name)}")
    ctx.mapping("(top level)", data)
    # Open Model Zoo 2021.x wrote only task_type here (its tools read the stages alone); 2022.1 on
    # also wrote framework, description and license. Missing ones are taken from the stages.
    if "framework" in data or not stages:
        framework = _framework(ctx, ctx.require(data, "framework"))
    else:
        framework = _from_stages(stage.framework for stage in stages)
    if "description" in data or not stages:
        description = ctx.string("description", ctx.require(data, "description"))
    else:
        description = f"Composite model of {len(stages)} stages: {', '.join(s.name for s in stages)}"
    if "license" in data or not stages:
        license_url = ctx.string("license", ctx.require(data, "license"))
    else:
        license_url = _from_stages(stage.license_url for stage in stages)
    return Model(
        name=name, subdirectory=subdirectory, registry_root=registry_root,
        framework=framework, description=description, license_url=license_url,
        task_type=ctx.enum("task_type", ctx.require(data, "task_type"), KNOWN_TASK_TYPES),
        precisions=stages[0].precisions if stages else frozenset(),
        composite_model_name=name, model_stages=stages)


def _from_stages(values) -> str:
    """The stages' value when they share one, else their distinct values in stage order."""
    return ", ".join(dict.fromkeys(values))
