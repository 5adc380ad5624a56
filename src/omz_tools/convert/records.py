"""What produced an IR folder, so a rerun can skip a conversion whose inputs did not change.

Each IR folder ``<output_dir>/<subdirectory>/<PRECISION>/`` holds ``.omz_converted.json``: the
``key`` (input files with their registry hashes and stat, the MO command, versions of MO,
OpenVINO, protobuf and omz_tools, the model_info written into rt_info, the model card checked)
and the size and mtime of the .xml/.bin written. The record moves into place with the IR, so it
never describes a folder it did not come with. Reading it costs a stat per file: no hashing and
no openvino import, which keeps an up-to-date rerun well under a second.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from omz_tools.localstate import read_json, write_json

RECORD_NAME = ".omz_converted.json"
# Bump when the conversion itself changes (FP16 derivation, rt_info, checks), to redo old IR.
RECIPE = 1


def stat_fields(path: Path) -> Optional[dict]:
    """Size and mtime of an input or output file (None if absent), as records hold them."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def input_fingerprint(model, download_dir: Path) -> list:
    """The model's input files as the registry describes them, plus their current stat."""
    folder = Path(download_dir) / model.subdirectory
    return [{"name": f.name.as_posix(), "size": f.size, f.checksum.algorithm: f.checksum.value,
             "stat": stat_fields(folder / f.name)} for f in model.files]


def conversion_key(model, *, precision: str, inputs: list, mo_command: list, versions: dict) -> dict:
    """Everything that decides what lands in one IR folder."""
    from omz_tools.version import __version__
    return {
        "recipe": RECIPE,
        "model": model.name,
        "precision": precision,
        "inputs": inputs,
        "mo_command": [str(part) for part in mo_command],
        "versions": {**versions, "omz_tools": __version__},
        "model_info": model.model_info,
        "model_card": model.model_card,
    }


def outputs(ir_dir: Path, name: str) -> dict:
    return {ext: stat_fields(Path(ir_dir) / f"{name}.{ext}") for ext in ("xml", "bin")}


def write(ir_dir: Path, key: dict, name: str, extra: Optional[dict] = None) -> None:
    record = {"format": 1, "key": key, "outputs": outputs(ir_dir, name), **(extra or {})}
    write_json(Path(ir_dir) / RECORD_NAME, record)


def read(ir_dir: Path) -> Optional[dict]:
    return read_json(Path(ir_dir) / RECORD_NAME) or None


def up_to_date(ir_dir: Path, key: dict, name: str) -> bool:
    """True iff ``ir_dir`` holds the IR this key produces, unchanged since it was written."""
    record = read(ir_dir)
    if record is None or record.get("key") != json.loads(json.dumps(key)):
        return False
    current = outputs(ir_dir, name)
    return all(current[ext] is not None for ext in current) and record.get("outputs") == current
