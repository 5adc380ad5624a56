"""The model.yml schema: typed records and their validation.

Accepts everything openvino-dev 2024.6's omz_tools accept (and ignores the
same unknown keys), plus ``sha256`` file hashes, the ``caffe`` framework and a
``model_card`` section of figures the converter checks. Every problem raises
:class:`RegistryError` naming the file, the model, the key path, what was
expected and what was found.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from omz_tools.errors import OmzError

# The frameworks Open Model Zoo's tools knew from 2020.1 to 2024.6 (and Model Optimizer's Kaldi), with
# the script that converts a model to ONNX first (None: Model Optimizer reads it, or dldt: IR already). Any other framework string is accepted
# too (registries outlive tools): the registry, the info dumper and the downloader treat the model as
# any other, and the converter refuses it, that model alone, when asked to convert it.
KNOWN_FRAMEWORKS: dict[str, Optional[str]] = {
    "caffe": None,
    "caffe2": "caffe2_to_onnx.py",
    "dldt": None,
    "kaldi": None,
    "mxnet": None,
    "onnx": None,
    "paddle": None,
    "pytorch": "pytorch_to_onnx.py",
    "tf": None,
}
# Frameworks whose models openvino-dev 2024.6's Model Optimizer reads itself (it has no MXNet front
# end any more; caffe2 and pytorch go through ONNX first; dldt models are IR already).
MO_FRAMEWORKS = frozenset({"caffe", "kaldi", "onnx", "paddle", "tf"})
KNOWN_PRECISIONS = frozenset({"FP16", "FP16-INT1", "FP16-INT8", "FP32", "FP32-INT1", "FP32-INT8"})
# What a model with model_optimizer_args can be converted to.
CONVERTIBLE_PRECISIONS = frozenset({"FP16", "FP32"})
KNOWN_TASK_TYPES = frozenset({
    "action_recognition", "background_matting", "classification", "colorization", "detection",
    "face_recognition", "feature_extraction", "head_pose_estimation", "human_pose_estimation",
    "image_inpainting", "image_processing", "image_translation", "instance_segmentation",
    "machine_translation", "monocular_depth_estimation", "named_entity_recognition",
    "noise_suppression", "object_attributes", "optical_character_recognition", "place_recognition",
    "question_answering", "salient_object_detection", "semantic_segmentation",
    "sound_classification", "speech_recognition", "style_transfer", "text_prediction",
    "text_to_speech", "time_series", "token_recognition",
})
# The $variables the converter expands in model_optimizer_args / conversion_to_onnx_args.
MO_VARIABLES = frozenset({"dl_dir", "conv_dir", "config_dir", "mo_dir", "mo_ext_dir"})
HASH_HEX_LENGTHS = {"sha256": 64, "sha384": 96}
# File-name parts the tools use for their own state beside or inside a model's folder (records,
# resumable downloads, locks, temporary files): a model file with such a name would be overwritten
# by that state, or the state by it.
STATE_PREFIXES = (".omz_",)
STATE_SUFFIXES = (".part", ".part.json")
HIDDEN_STATE_SUFFIXES = (".lock", ".tmp", ".unpacking")  # on names starting with "."
# model_info keys openvino-dev's omz_converter writes into the IR's rt_info, with their kinds.
MODEL_INFO_KINDS = {"model_type": str, "confidence_threshold": float, "iou_threshold": float,
                    "resize_type": str, "anchors": list, "masks": list, "labels": list}
JSON_INT_LIMIT = 2 ** 63  # model_card / model_info / input_info integers: |n| below this
RE_MODEL_NAME = re.compile(r"[0-9a-zA-Z._-]+")
_RE_HEX = re.compile(r"[0-9a-fA-F]+")


class RegistryError(OmzError):
    """A registry entry that cannot be used; the message is meant for the user as is."""

    def __init__(self, problem: str, config: Optional[Path] = None, model: Optional[str] = None,
                 key: Optional[str] = None):
        self.problem = problem
        self.config = config
        self.model = model
        self.key = key
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.config is not None:
            where.append(str(self.config))
        if self.model is not None:
            where.append(f'model "{self.model}"')
        if self.key:
            where.append(self.key)
        return ": ".join(where + [self.problem])


class RegistryErrors(RegistryError):
    """Several invalid models at once: ``errors`` holds one :class:`RegistryError` each, and the
    message is their messages, one line each."""

    def __init__(self, errors: list):
        self.errors = list(errors)
        first = self.errors[0]
        self.problem, self.config, self.model, self.key = first.problem, first.config, first.model, first.key
        Exception.__init__(self, "\n".join(str(e) for e in self.errors))

    def _format(self) -> str:
        return "\n".join(str(e) for e in self.errors)


@dataclass(frozen=True)
class Checksum:
    algorithm: str  # "sha256" or "sha384"
    value: str  # lower-case hex digest

    def new_hasher(self):
        import hashlib
        return hashlib.new(self.algorithm)


@dataclass(frozen=True)
class FileSource:
    kind: str  # "http" or "google_drive"
    url: Optional[str] = None
    id: Optional[str] = None

    def describe(self) -> str:
        return self.url if self.kind == "http" else f"google_drive:{self.id}"


@dataclass(frozen=True)
class ModelFile:
    name: PurePosixPath  # relative to the model's folder
    size: int
    checksum: Checksum
    source: FileSource


@dataclass(frozen=True)
class RegexReplace:
    file: PurePosixPath
    pattern: "re.Pattern[str]"
    replacement: str
    count: int  # 0: replace every occurrence


@dataclass(frozen=True)
class UnpackArchive:
    file: PurePosixPath
    format: str  # a shutil.unpack_archive format name: zip, tar, gztar, bztar, xztar


Postprocessing = "RegexReplace | UnpackArchive"


@dataclass(frozen=True)
class InputInfo:
    name: str
    shape: list
    layout: str


@dataclass
class Model:
    """One model (or one stage of a composite model) of a registry."""

    name: str
    subdirectory: PurePosixPath  # relative to the registry root and to output folders
    registry_root: Path
    framework: str
    description: str
    license_url: str
    task_type: str
    precisions: frozenset
    files: list = field(default_factory=list)
    postprocessing: list = field(default_factory=list)
    mo_args: Optional[list] = None
    conversion_to_onnx_args: Optional[list] = None
    input_info: list = field(default_factory=list)
    model_info: dict = field(default_factory=dict)
    model_card: dict = field(default_factory=dict)
    quantizable: Optional[str] = None
    composite_model_name: Optional[str] = None
    model_stages: list = field(default_factory=list)

    @property
    def config_dir(self) -> Path:
        return self.registry_root / self.subdirectory

    @property
    def is_composite(self) -> bool:
        return bool(self.model_stages)

    @property
    def converter_to_onnx(self) -> Optional[str]:
        return KNOWN_FRAMEWORKS.get(self.framework)

    def leaves(self) -> list:
        """The models that own files: the stages of a composite model, else the model itself."""
        return list(self.model_stages) if self.model_stages else [self]


# -- validation helpers ------------------------------------------------------------------------

class _Ctx:
    """Where we are while validating: builds RegistryErrors with the right file/model/key."""

    def __init__(self, config: Path, model: str):
        self.config = config
        self.model = model

    def error(self, key: str, problem: str) -> RegistryError:
        return RegistryError(problem, self.config, self.model, key)

    def require(self, mapping: dict, key: str, where: str = ""):
        if key not in mapping:
            raise self.error(f"{where}.{key}" if where else key,
                             "expected this required key, found no such key")
        return mapping[key]

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, found {_show(value)}")
        return value

    def enum(self, key: str, value: Any, known) -> str:
        self.string(key, value)
        if value not in known:
            raise self.error(key, f"expected one of {', '.join(sorted(known))}; found {_q(value)}")
        return value

    def nonneg_int(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(key, f"expected a non-negative integer, found {_show(value)}")
        return value

    def mapping(self, key: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, found {_show(value)}")
        return value

    def list(self, key: str, value: Any) -> list:
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, found {_show(value)}")
        return value

    def relative_path(self, key: str, value: Any) -> PurePosixPath:
        self.string(key, value)
        path = PurePosixPath(value)
        if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value) or path.is_absolute():
            raise self.error(key, f"expected a relative path, found the absolute path {_q(value)}")
        if ".." in path.parts or ".." in PurePosixPath(value.replace("\\", "/")).parts:
            raise self.error(key, f"expected a path inside the model folder, found {_q(value)} (contains '..')")
        if value in ("", "."):
            raise self.error(key, "expected a file name, found an empty path")
        return path


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _q(text: str, limit: int = 200) -> str:
    """repr of a string, cut to ``limit`` characters first (never repr a huge value whole)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _brief(value: Any, limit: int, depth: int = 0) -> str:
    """About ``limit`` characters of repr(value), built piece by piece: a value may be huge, so it
    is never formatted whole first (a long string, a big integer, a long or deep list)."""
    if isinstance(value, str):
        return _q(value, limit)
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value[:limit])) + ("..." if len(value) > limit else "")
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > 4 * limit:  # str() of a huge int is slow, or refused beyond 4300 digits
            return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
        return repr(value)
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        brackets = {list: "[]", tuple: "()", dict: "{}"}.get(type(value), "{}")
        if depth > 8:
            return brackets[0] + "..." + brackets[1]
        parts, used = [], 2
        for item in (value.items() if isinstance(value, dict) else value):
            if used > limit:
                parts.append("...")
                break
            part = (f"{_brief(item[0], limit, depth + 1)}: {_brief(item[1], limit, depth + 1)}"
                    if isinstance(value, dict) else _brief(item, limit, depth + 1))
            parts.append(part)
            used += len(part) + 2
        return brackets[0] + ", ".join(parts) + brackets[1]
    text = repr(value)
    return text[:limit] + ("..." if len(text) > limit else "")


def _kind(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping", bytes: "binary data", set: "set", tuple: "tuple"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    text = _brief(value, 60)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{_kind(value)} {text}"


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
    return Model(
        name=name, subdirectory=subdirectory, registry_root=registry_root,
        framework=_framework(ctx, ctx.require(data, "framework")),
        description=ctx.string("description", ctx.require(data, "description")),
        license_url=ctx.string("license", ctx.require(data, "license")),
        task_type=ctx.enum("task_type", ctx.require(data, "task_type"), KNOWN_TASK_TYPES),
        precisions=stages[0].precisions if stages else frozenset(),
        composite_model_name=name, model_stages=stages)
