"""The ovc backend (openvino.convert_model in its child process) reads only regular model files within
bounds (issue 20, item 6, for the files it hands to OpenVINO): an ONNX path that is a FIFO or
/dev/zero, a SavedModel folder holding a FIFO, or a file over OMZ_MODEL_FILE_MAX_SIZE is one message
before OpenVINO reads anything. No onnx package is needed: the refusal comes before reading."""

from __future__ import annotations

import os

import pytest

from test_hostile_caffe import BASELINE_RSS, convert, failed_line
from conftest import write_registry_files
from helpers_caffe import file_digest

pytestmark = pytest.mark.native
ov = pytest.importorskip("openvino")


def register(tmp_path, name: str, framework: str, mo_args: list) -> dict:
    """A registry with one model whose one (verified) file is a small placeholder; ``mo_args`` name the
    model files convert_model is handed."""
    folder = tmp_path / "dl" / "public" / name
    folder.mkdir(parents=True)
    (folder / "placeholder.bin").write_bytes(b"x" * 16)
    size, sha = file_digest(folder / "placeholder.bin")
    args = "".join(f"  - {a}\n" for a in mo_args)
    write_registry_files(tmp_path / "registry", {f"public/{name}": (
        f"description: hostile {name}\ntask_type: classification\nfiles:\n  - name: placeholder.bin\n"
        f"    size: {size}\n    sha256: {sha}\n    source: http://127.0.0.1:9/placeholder.bin\n"
        f"model_optimizer_args:\n{args}framework: {framework}\nlicense: https://example.com/license\n")})
    return {"name": name, "registry": tmp_path / "registry", "dl": tmp_path / "dl", "out": tmp_path / "out"}


def refused(run: dict, env=None) -> str:
    proc, peak = convert(run, env, "--backend", "ovc")
    line = failed_line(proc, run["name"])
    assert f"(model_optimizer_args of {run['registry']}/public/{run['name']}/model.yml" in line, line
    assert "openvino.convert_model was not run; no IR was written." in line, line
    assert peak < BASELINE_RSS, peak
    assert not any((run["out"] / "public" / run["name"] / p).exists() for p in ("FP32", "FP16"))
    return line


def test_an_onnx_model_at_a_fifo_or_dev_zero_is_refused_before_openvino_reads_it(tmp_path):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    line = refused(register(tmp_path / "f", "onnxfifo", "onnx", [f"--input_model={fifo}"]))
    assert f"the model file {fifo} (model_optimizer_args" in line and "is a named pipe (FIFO)" in line, line
    line = refused(register(tmp_path / "z", "onnxzero", "onnx", ["--input_model=/dev/zero"]))
    assert "the model file /dev/zero (model_optimizer_args" in line and "is a character device" in line, line


def test_an_onnx_model_over_the_file_limit_is_refused_by_size(tmp_path):
    big = tmp_path / "big.onnx"
    big.write_bytes(b"\0" * 4096)
    line = refused(register(tmp_path, "onnxbig", "onnx", [f"--input_model={big}"]),
                   {"OMZ_MODEL_FILE_MAX_SIZE": "1K"})
    assert f"the model file {big}" in line and "raise OMZ_MODEL_FILE_MAX_SIZE (now 1.0 KiB)" in line, line


def test_a_saved_model_folder_is_checked_file_by_file(tmp_path):
    saved = tmp_path / "saved"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"\0" * 16)
    os.mkfifo(saved / "variables" / "variables.data-00000-of-00001")
    line = refused(register(tmp_path, "tffifo", "tf", [f"--saved_model_dir={saved}"]))
    assert f"the model file {saved}/variables/variables.data-00000-of-00001" in line, line
    assert "is a named pipe (FIFO)" in line, line
