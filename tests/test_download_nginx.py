"""Against a real nginx on 127.0.0.1: Range + If-Range resume, a changed file answered with 200,
and the end-to-end download of the real SE-ResNet-101 prototxt plus a generated caffemodel."""

from __future__ import annotations

import hashlib
import json
import os

import requests
import yaml

from conftest import REPO_ROOT
from helpers_http import events, run_downloader, sha256, write_registry
from helpers_nginx import nginx, nginx_factory  # noqa: F401
from omz_tools.download import verified
from omz_tools.registry import Registry

MiB = 1 << 20


def _setup(tmp_path, nginx, data):
    (nginx.root / "m.bin").write_bytes(data)
    registry = tmp_path / "reg"
    write_registry(registry, {"public/m1": {"files": [{"name": "m.bin", "data": data,
                                                       "source": nginx.url_for("m.bin")}]}})
    return registry, tmp_path / "out" / "public" / "m1" / "m.bin"


def _leave_part(target, url, prefix, validator, data):
    target.parent.mkdir(parents=True, exist_ok=True)
    target.with_name("m.bin.part").write_bytes(prefix)
    target.with_name("m.bin.part.json").write_text(json.dumps({
        "url": url, "validator": validator, "algorithm": "sha256", "hash": sha256(data), "size": len(data)}))


def test_resume_with_if_range_gets_206_for_the_rest(tmp_path, nginx):
    data = os.urandom(3 * MiB + 17)
    registry, target = _setup(tmp_path, nginx, data)
    etag = requests.head(nginx.url_for("m.bin"), timeout=5).headers["ETag"]
    _leave_part(target, nginx.url_for("m.bin"), data[:MiB], etag, data)  # as a killed run leaves it
    proc = run_downloader("--registry", registry, "--name", "m1", "-o", tmp_path / "out",
                          "--progress_format", "json")
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() == data
    assert [(status, sent, rng) for path, status, sent, rng in nginx.transfers() if path == "/m.bin"] == [
        (206, len(data) - MiB, f"bytes={MiB}-")]
    resumes = [e for e in events(proc.stdout) if e["$type"] == "model_file_download_resume"]
    assert resumes and resumes[0]["offset"] == MiB


def test_changed_file_is_sent_whole_and_the_download_restarts(tmp_path, nginx):
    old, new = os.urandom(2 * MiB), os.urandom(2 * MiB + 5)
    (nginx.root / "m.bin").write_bytes(old)
    old_etag = requests.head(nginx.url_for("m.bin"), timeout=5).headers["ETag"]
    registry, target = _setup(tmp_path, nginx, new)  # the file changed upstream (new ETag)
    _leave_part(target, nginx.url_for("m.bin"), old[:MiB], old_etag, new)
    proc = run_downloader("--registry", registry, "--name", "m1", "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() == new
    assert [(status, sent) for path, status, sent, rng in nginx.transfers()] == [(200, len(new))]
    assert "starting over" in proc.stderr


def test_parallel_download_and_rerun_without_requests(tmp_path, nginx):
    blobs = {f"f{i}.bin": os.urandom(MiB * (i + 1)) for i in range(3)}
    for name, data in blobs.items():
        (nginx.root / name).write_bytes(data)
    registry = tmp_path / "reg"
    write_registry(registry, {"public/m1": {"files": [
        {"name": name, "data": data, "source": nginx.url_for(name)} for name, data in blobs.items()]}})
    out = tmp_path / "out"
    assert run_downloader("--registry", registry, "--name", "m1", "-o", out, "-j", "3").returncode == 0
    assert len(nginx.transfers()) == 3
    assert run_downloader("--registry", registry, "--name", "m1", "-o", out, "-j", "3").returncode == 0
    assert len(nginx.transfers()) == 3
    for name, data in blobs.items():
        assert (out / "public" / "m1" / name).read_bytes() == data


def test_end_to_end_real_se_resnet_prototxt_and_a_generated_caffemodel(tmp_path, nginx, se_resnet_prototxt):
    entry = yaml.safe_load((REPO_ROOT / "models" / "public" / "se-resnet-101" / "model.yml").read_text())
    caffemodel = os.urandom(4 * MiB + 123)  # stands in for the 198 MB weights
    folder = nginx.root / "public" / "se-resnet-101"
    folder.mkdir(parents=True)
    (folder / "SE-ResNet-101.prototxt").symlink_to(se_resnet_prototxt)  # read in place, never copied
    (folder / "SE-ResNet-101.caffemodel").write_bytes(caffemodel)
    for file in entry["files"]:
        if file["name"].endswith(".prototxt"):
            file["source"] = nginx.url_for("public/se-resnet-101/SE-ResNet-101.prototxt")
        else:
            file.update(size=len(caffemodel), sha256=hashlib.sha256(caffemodel).hexdigest(),
                        source=nginx.url_for("public/se-resnet-101/SE-ResNet-101.caffemodel"))
    registry = tmp_path / "reg"
    (registry / "public" / "se-resnet-101").mkdir(parents=True)
    (registry / "public" / "se-resnet-101" / "model.yml").write_text(yaml.safe_dump(entry))

    out = tmp_path / "out"
    proc = run_downloader("--registry", registry, "--name", "se-resnet-101", "-o", out, "-j", "2")
    assert proc.returncode == 0, proc.stderr
    model = Registry([registry]).load("se-resnet-101")
    prototxt = next(f for f in model.files if f.name.suffix == ".prototxt")
    assert prototxt.checksum.value == "c97375db60ad04e1196966c7149bd5cc98fbb9a34bdde511c26c922ba791903d"
    for model_file in model.files:
        path = out / "public" / "se-resnet-101" / model_file.name
        assert verified(path, model_file, full_check=True), path
    assert (out / "public" / "se-resnet-101" / "se-resnet-101.prototxt").read_bytes() == \
        se_resnet_prototxt.read_bytes()
