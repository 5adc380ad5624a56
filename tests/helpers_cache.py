"""Helpers for the cache/mirror/offline command tests: test registries and running the commands."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from conftest import command, events, write_registry_files  # noqa: F401 - events: the one helper


def digest(data: bytes, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, data).hexdigest()


def write_model(registry: Path, model: str, files: dict, *, algorithm: str = "sha256",
                framework: str = "onnx", subdir: str = "public") -> Path:
    """files: {name: (data, url)}. sha384 entries use OMZ's plain ``checksum`` key."""
    entries = []
    for name, (data, url) in files.items():
        entry = {"name": name, "size": len(data), "source": url}
        if algorithm == "sha256":
            entry["sha256"] = digest(data)
        else:
            entry["checksum"] = digest(data, "sha384")
        entries.append(entry)
    spec = {"description": "test model", "task_type": "classification", "license": "none",
            "framework": framework, "files": entries}
    if framework != "dldt":
        spec["model_optimizer_args"] = ["--input_model=$dl_dir/model.onnx"]
    return write_registry_files(registry, {f"{subdir}/{model}": spec})


def serve(root: Path, relpath: str, data: bytes) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def offline_env(env: dict) -> dict:
    """Loopback goes direct; anything else would hit a closed local port (no outside traffic)."""
    return dict(env, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
                HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")


def downloader(*args, env: dict, **kwargs):
    return subprocess.run([command("omz-downloader"), *map(str, args)], capture_output=True, text=True,
                          env=offline_env(env), **kwargs)


def downloader_popen(*args, env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([command("omz-downloader"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=offline_env(env), **kwargs)


def served_by(stdout: str) -> dict:
    """{model_file: served_by} from the JSON summary."""
    summary = events(stdout)[-1]
    assert summary["$type"] == "download_summary", summary
    return {item["model_file"]: item["served_by"] for item in summary["served"]}


def omz_package_copy(dest: Path) -> Path:
    """A throwaway copy of openvino-dev's omz_tools folder (its registry is its models/ folder);
    run its omz_downloader with PYTHONPATH=<returned path> to use the copy."""
    import importlib.util
    origin = Path(importlib.util.find_spec("omz_tools.omz_downloader").origin).parent
    shutil.copytree(origin, dest / "omz_tools", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def omz_downloader(*args, env: dict, pythonpath: Path) -> subprocess.CompletedProcess:
    return subprocess.run([command("omz_downloader"), *map(str, args)], capture_output=True, text=True,
                          env=dict(offline_env(env), PYTHONPATH=str(pythonpath), CI="true"))


def tree(folder: Path) -> list:
    """Relative paths of the files below folder, without our records."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != ".omz_verified.json")


def same_file(a: Path, b: Path) -> bool:
    return os.path.samefile(a, b)
