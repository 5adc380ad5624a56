"""The model.yml schema: typed records and their validation.

Accepts everything openvino-dev 2024.6's omz_tools accept (and ignores the
same unknown keys), plus ``sha256`` file hashes, the ``caffe`` framework, a
``model_card`` section of figures the converter checks, and Open Model Zoo 2021.x's
composite-model.yml without ``framework``, ``description`` or ``license`` (taken from the stages). Every problem raises
:class:`RegistryError` naming the file, the model, the key path, what was
expected and what was found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Optional

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
        from omz_tools.wording import printable
        return printable(": ".join(where + [self.problem]))  # one line, whatever the file's names hold


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


# The validation lives in parse.py and context.py; these names stay importable from here.
from omz_tools.registry.context import _cut, _q, _show  # noqa: E402,F401
from omz_tools.registry.parse import parse_composite, parse_model  # noqa: E402,F401
