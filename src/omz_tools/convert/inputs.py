"""Are a model's input files present and verified? (The downloader's records, hashing if stale.)"""

from __future__ import annotations

from pathlib import Path

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
