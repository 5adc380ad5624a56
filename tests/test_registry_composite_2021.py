"""Composite models as Open Model Zoo 2021.x wrote them: ``composite-model.yml`` held only
``task_type`` (all 11 composites of 2021.4, mtcnn among them: ``task_type: detection``), some
registries also a ``description``; the tools of that time read the stages alone, which carry
framework, license and files. Such a composite is valid: its framework and license are the
stages' (their distinct values in stage order when they differ), its description names the
stages, and without ``stages_order`` the stages run in folder name order.

Run through the three commands (``--all`` included) on a hand-written registry in that format,
files served by pytest-httpserver on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from conftest import command, write_registry_files
from omz_tools.registry import Registry

PNET = b"p-net weights\n" * 7
RNET = b"r-net weights\n" * 9
ONET = b"o-net weights\n" * 11
PROTO = b"name: 'net'\n"
PROTO_SHA256 = hashlib.sha256(PROTO).hexdigest()


def stage(name: str, data: bytes, base: str, *, framework: str = "caffe",
          license_url: str = "https://example.com/mtcnn/LICENSE") -> str:
    # 2021.4 style: sha256, URL-string sources, no model_card.
    return f"""\
description: stage {name}
task_type: detection
files:
  - name: {name}.prototxt
    size: {len(PROTO)}
    sha256: {PROTO_SHA256}
    source: {base}/{name}.prototxt
  - name: {name}.caffemodel
    size: {len(data)}
    sha256: {hashlib.sha256(data).hexdigest()}
    source: {base}/{name}.caffemodel
model_optimizer_args:
  - --input=data
  - --input_model=$dl_dir/{name}.caffemodel
  - --input_proto=$dl_dir/{name}.prototxt
framework: {framework}
license: {license_url}
"""


def write_2021_registry(root: Path, base: str) -> Path:
    return write_registry_files(root, {
        # Open Model Zoo 2021.4's mtcnn/composite-model.yml, whole.
        "public/mtcnn/composite-model.yml": "task_type: detection\n",
        "public/mtcnn/mtcnn-p": stage("mtcnn-p", PNET, base),
        "public/mtcnn/mtcnn-r": stage("mtcnn-r", RNET, base),
        "public/mtcnn/mtcnn-o": stage("mtcnn-o", ONET, base),
        # A description but no framework; stages of two frameworks and two licenses.
        "public/mixed/composite-model.yml": "description: A detector and a recogniser\ntask_type: detection\n",
        "public/mixed/mixed-detector": stage("mixed-detector", PNET, base),
        "public/mixed/mixed-recognizer": stage("mixed-recognizer", RNET, base, framework="onnx",
                                               license_url="https://example.com/other/LICENSE"),
    })


@pytest.fixture
def registry_2021(tmp_path, httpserver, clean_env):
    base = httpserver.url_for("/files").rstrip("/")
    for name, data in {"mtcnn-p": PNET, "mtcnn-r": RNET, "mtcnn-o": ONET, "mixed-detector": PNET,
                       "mixed-recognizer": RNET}.items():
        httpserver.expect_request(f"/files/{name}.caffemodel").respond_with_data(data)
        httpserver.expect_request(f"/files/{name}.prototxt").respond_with_data(PROTO)
    return write_2021_registry(tmp_path / "registry", base), clean_env


def run(name: str, *args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([command(name), *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


def test_a_2021_composite_takes_framework_license_and_order_from_its_stages(registry_2021):
    root, _ = registry_2021
    mtcnn = Registry([root]).load("mtcnn")
    assert mtcnn.framework == "caffe"
    assert mtcnn.license_url == "https://example.com/mtcnn/LICENSE"
    assert mtcnn.task_type == "detection"
    # No stages_order: folder name order, as the 2021.4 tools listed them.
    assert [s.name for s in mtcnn.model_stages] == ["mtcnn-o", "mtcnn-p", "mtcnn-r"]
    assert mtcnn.description == "Composite model of 3 stages: mtcnn-o, mtcnn-p, mtcnn-r"
    assert mtcnn.precisions == frozenset({"FP16", "FP32"})


def test_stages_of_different_frameworks_and_licenses_are_all_named(registry_2021):
    root, _ = registry_2021
    mixed = Registry([root]).load("mixed")
    assert mixed.framework == "caffe, onnx"
    assert mixed.license_url == "https://example.com/mtcnn/LICENSE, https://example.com/other/LICENSE"
    assert mixed.description == "A detector and a recogniser"
    assert [s.framework for s in mixed.model_stages] == ["caffe", "onnx"]


def test_info_dumper_all_lists_the_2021_composites(registry_2021):
    root, env = registry_2021
    result = run("omz-info-dumper", "--all", "--registry", root, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    info = {m["name"]: m for m in json.loads(result.stdout)}
    assert {"mtcnn", "mixed"} <= set(info)
    mtcnn = info["mtcnn"]
    assert (mtcnn["framework"], mtcnn["task_type"], mtcnn["composite_model_name"]) == ("caffe", "detection", "mtcnn")
    assert [s["name"] for s in mtcnn["model_stages"]] == ["mtcnn-o", "mtcnn-p", "mtcnn-r"]
    assert all(s["composite_model_name"] == "mtcnn" for s in mtcnn["model_stages"])
    result = run("omz-info-dumper", "--print_all", "--registry", root, env=env)
    assert result.returncode == 0
    assert {"mtcnn", "mixed"} <= set(result.stdout.split())


def test_downloader_plans_all_then_fetches_a_2021_composite(registry_2021, tmp_path):
    root, env = registry_2021
    out = tmp_path / "out"
    result = run("omz-downloader", "--all", "--dry_run", "--registry", root, "-o", out, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("mtcnn-p", "mtcnn-r", "mtcnn-o", "mixed-detector", "mixed-recognizer"):
        assert f"{name}.caffemodel" in result.stdout
    assert not out.exists() or not any(out.rglob("*.caffemodel"))
    result = run("omz-downloader", "--name", "mtcnn", "--registry", root, "-o", out, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "public" / "mtcnn" / "mtcnn-r" / "mtcnn-r.caffemodel").read_bytes() == RNET


def test_converter_dry_run_of_a_2021_composite_uses_each_stage(registry_2021, tmp_path):
    root, env = registry_2021
    result = run("omz-converter", "--name", "mtcnn", "--registry", root, "-d", tmp_path / "out", "--dry_run",
                 "--backend", "native", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    positions = [result.stdout.index(f"{name}.caffemodel") for name in ("mtcnn-o", "mtcnn-p", "mtcnn-r")]
    assert positions == sorted(positions)


@pytest.mark.parametrize("text, key", [
    ("description: no task type\n", "task_type"),
    ("task_type: detection\nframework: [caffe]\n", "framework"),
    ("task_type: detection\nlicense: 5\n", "license"),
    ("task_type: detection\ndescription: [x]\n", "description"),
], ids=["no task_type", "framework not a string", "license not a string", "description not a string"])
def test_a_key_present_is_still_checked(tmp_path, clean_env, text, key):
    root = write_registry_files(tmp_path / "registry", {
        "public/c/composite-model.yml": text,
        "public/c/c-a": stage("c-a", PNET, "https://example.com"),
    })
    result = run("omz-info-dumper", "--name", "c", "--registry", root, env=clean_env)
    assert result.returncode == 1
    assert result.stderr.startswith("Registry error: ") and len(result.stderr.splitlines()) == 1, result.stderr
    assert f'composite-model.yml: model "c": {key}: expected ' in result.stderr
