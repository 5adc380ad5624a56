"""Are a model's input files present and verified? (The downloader's records, hashing if stale.) Are
the files its Model Optimizer arguments name readable as model files (``bounds``)?"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omz_tools.convert.mo import command_string
from omz_tools.registry import Model, UnpackArchive


def missing_inputs(model: Model, download_dir: Path) -> list:
    """(file name, why) for each input file not present and verified."""
    from omz_tools.download import verified
    folder = Path(download_dir) / model.subdirectory
    unpacked = {str(step.file) for step in model.postprocessing if isinstance(step, UnpackArchive)}
    problems = []
    for model_file in model.files:
        path = folder / model_file.name
        name = model_file.name.as_posix()
        if not path.exists():
            if name in unpacked and _unpacked_record(folder, name, model_file):
                continue
            problems.append((name, "absent"))
        elif not verified(path, model_file, full_check=False):
            problems.append((name, f"does not match the registry's size/{model_file.checksum.algorithm}"))
    return problems


def _unpacked_record(folder: Path, name: str, model_file) -> bool:
    """The archive is gone because the downloader's unpack_archive consumed it after verifying it."""
    from omz_tools.download.records import UNPACKED, FolderRecord
    entry = FolderRecord(folder).file(name)
    return bool(entry and entry.get("state") == UNPACKED
                and entry.get("hash") == model_file.checksum.value)


def fetch_command(model: Model, download_dir: Path, registries) -> str:
    parts = ["omz-downloader", "--name", model.composite_model_name or model.name, "-o", str(download_dir)]
    for registry in registries or []:
        parts += ["--registry", str(registry)]
    return command_string(parts)


# Model Optimizer's options that name a file (or, marked True, a file or a folder) it reads.
MO_FILE_OPTIONS = {
    "input_model": True, "input_proto": False, "input_checkpoint": True, "input_meta_graph": False,
    "input_symbol": False, "mean_file": False, "counts": False, "transformations_config": False,
    "tensorflow_object_detection_api_pipeline_config": False, "saved_model_dir": True,
}


def _named_files(args: Sequence[str]):
    """(option, path) for each MO_FILE_OPTIONS option in ``args`` (``--opt=value`` or ``--opt value``)."""
    args = list(args)
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        option, equals, value = arg[2:].partition("=")
        if option in MO_FILE_OPTIONS:
            if not equals:
                value = args[i + 1] if i + 1 < len(args) else ""
            if value:
                yield option, value


def check_named_files(model: Model, args: Sequence[str]) -> None:
    """Before Model Optimizer runs: each file its arguments name is a regular file (a folder where MO
    takes one, or absent: MO says so) within ``bounds.MODEL_FILE_MAX_SIZE``, so that model.yml's
    ``--input_proto=/dev/zero`` or a FIFO is one message, not a hang or memory exhaustion in MO."""
    from omz_tools.convert import bounds
    for option, value in _named_files(args):
        what = f"--{option}={value} (model_optimizer_args of {model.config_dir / 'model.yml'}, or --add_mo_arg)"
        try:
            bounds.check_file(Path(value), what, folders=MO_FILE_OPTIONS[option])
        except bounds.BoundError as exc:
            raise bounds.BoundError(f"{exc}. Model Optimizer was not run; no IR was written.") from None


def check_read_paths(config_file: Path, paths: Sequence) -> None:
    """Before openvino.convert_model reads them: each path a regular file within
    ``bounds.MODEL_FILE_MAX_SIZE`` (or absent: convert_model says so), and each file of a folder (a
    SavedModel) too, its subfolders walked without following links, so a FIFO or a device named by
    model.yml is one message, not a hang or memory exhaustion in OpenVINO."""
    import os
    from omz_tools.convert import bounds
    where = f"(model_optimizer_args of {config_file}, or --add_mo_arg)"
    for value in paths:
        files = [Path(value)]
        if files[0].is_dir():
            files = [Path(top, name) for top, _, names in os.walk(files[0]) for name in sorted(names)]
        for path in files:
            try:
                bounds.check_file(path, f"the model file {path} {where}", folders=True)
            except bounds.BoundError as exc:
                raise bounds.BoundError(f"{exc}. openvino.convert_model was not run; no IR was written.") from None
