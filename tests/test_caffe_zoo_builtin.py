"""Every built-in Caffe model converts with ``--backend native``, on small stand-ins.

For each of the 29 Caffe models of the built-in registry, a temporary registry holds the built-in
model.yml with its files replaced by stand-ins (tests/helpers_caffe_zoo.py: the upstream prototxt
where ../shared has it, at 1/16 of its widths, else a small net with the model's input, layer types
and output names; random well-scaled weights; the entry's archives rebuilt with the same layout).
A server on 127.0.0.1 serves them; one ``omz-converter --download --backend native`` run through
the real CLI fetches, verifies, post-processes (the entry's own regex_replace and unpack_archive
steps) and converts all of them. Each IR must then have the input of the entry's Model Optimizer
arguments (name and shape), the outputs its ``--output`` names (with the model card's shapes), and
give finite outputs on an image-like input.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

import helpers_caffe
import helpers_caffe_zoo as zoo
from conftest import command
from omz_tools.registry import Registry, builtin_registry

pytestmark = pytest.mark.native

CAFFE_ZOO = [
    "Sphereface", "alexnet", "caffenet", "densenet-121", "densenet-161", "densenet-169", "densenet-201",
    "face-detection-retail-0044", "googlenet-v1", "googlenet-v2", "mobilenet-ssd", "mobilenet-v1-1.0-224",
    "mobilenet-v2", "mtcnn", "pelee-coco", "se-inception", "se-resnet-50", "se-resnet-101", "se-resnet-152",
    "se-resnext-50", "se-resnext-101", "squeezenet1.0", "squeezenet1.1", "ssd300", "ssd512", "vgg16", "vgg19",
]
BUILTIN = Registry([builtin_registry()])
LEAVES = [leaf for name in CAFFE_ZOO for leaf in BUILTIN.load(name).leaves()]


def _missing_fixture(leaf) -> str:
    if leaf.name in zoo.WRITTEN:
        return ""
    path = zoo.upstream_prototxt(leaf.name)
    return "" if path.is_file() else f"its stand-in is built on the upstream prototxt {path}, which is absent"


def _stand_in_files(leaf, seed: int, scratch: Path) -> dict:
    """Served file name -> bytes for one entry (the archive's members inside an archive)."""
    outputs = set((zoo.mo_value(leaf.mo_args, "output") or "").split(",")) - {""}
    served = zoo.stand_in_prototxt(leaf.name, outputs)
    final = zoo.postprocessed(served, leaf.postprocessing)
    mean, scale = zoo.preprocessing(leaf.mo_args)
    shape = json.loads(zoo.mo_value(leaf.mo_args, "input_shape"))
    blobs = zoo.weights_for(final, seed, shape, mean, scale)
    proto_path = zoo.mo_value(leaf.mo_args, "input_proto").replace("$dl_dir/", "")
    model_path = zoo.mo_value(leaf.mo_args, "input_model").replace("$dl_dir/", "")
    scratch.mkdir(parents=True)
    (scratch / "final.prototxt").write_text(final, encoding="utf-8")
    helpers_caffe.write_caffemodel(scratch / "final.prototxt", scratch / "w.caffemodel", blobs=blobs)
    members = {proto_path: served.encode(), model_path: (scratch / "w.caffemodel").read_bytes()}
    if len(leaf.files) == 1:  # an archive holding both
        return {leaf.files[0].name.as_posix(): zoo.tar_gz(members)}
    return members


def _entry(leaf, files: dict, base: str) -> dict:
    config = leaf.config_dir / "model.yml"
    entry = yaml.safe_load(config.read_text(encoding="utf-8"))
    for file in entry["files"]:
        data = files[file["name"]]
        file.update(size=len(data), sha256=hashlib.sha256(data).hexdigest(), source=f"{base}/{leaf.name}/{file['name']}")
        file.pop("checksum", None)
    for figure in ("mparams", "gflops", "accuracy"):  # the real weights' figures, not the stand-in's
        entry.get("model_card", {}).pop(figure, None)
    return entry


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(output folder, {leaf: reason it was left out}, the converter's result) after one run."""
    root = tmp_path_factory.mktemp("zoo")
    served, registry, out = root / "served", root / "registry", root / "out"
    left_out = {leaf.name: _missing_fixture(leaf) for leaf in LEAVES if _missing_fixture(leaf)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for seed, leaf in enumerate(LEAVES):
            if leaf.name in left_out:
                continue
            to_serve = _stand_in_files(leaf, seed, root / "scratch" / leaf.name)
            for name, data in to_serve.items():
                (served / leaf.name / name).parent.mkdir(parents=True, exist_ok=True)
                (served / leaf.name / name).write_bytes(data)
            folder = registry / leaf.subdirectory
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "model.yml").write_text(yaml.safe_dump(_entry(leaf, to_serve, base), sort_keys=False))
        composite = BUILTIN.load("mtcnn").config_dir / "composite-model.yml"
        (registry / "public" / "mtcnn" / "composite-model.yml").write_text(composite.read_text())
        names = [n for n in CAFFE_ZOO if not all(l.name in left_out for l in BUILTIN.load(n).leaves())]
        result = subprocess.run(
            [command("omz-converter"), "--name", ",".join(names), "--registry", str(registry), "--download",
             "-d", str(out), "--backend", "native", "--num_attempts", "1"],
            capture_output=True, text=True, timeout=1500)
    finally:
        server.shutdown()
        server.server_close()
    return out, left_out, result


def _failure(result, name: str) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if name in line and
             ("error" in line.lower() or "fail" in line.lower() or "not supported" in line)]
    return "\n".join(lines[-6:]) or (result.stdout + result.stderr)[-3000:]


@pytest.mark.parametrize("leaf", LEAVES, ids=[leaf.name for leaf in LEAVES])
def test_builtin_caffe_model_converts_natively(converted, leaf):
    out, left_out, result = converted
    if leaf.name in left_out:
        pytest.skip(left_out[leaf.name])
    import openvino as ov
    core = ov.Core()
    for precision in ("FP32", "FP16"):
        xml = out / leaf.subdirectory / precision / f"{leaf.name}.xml"
        assert xml.is_file(), f"no {precision} IR for {leaf.name}; the converter said:\n{_failure(result, leaf.name)}"
        model = core.read_model(xml)
        [port] = model.inputs
        assert port.get_any_name() == zoo.mo_value(leaf.mo_args, "input")
        assert list(port.get_shape()) == json.loads(zoo.mo_value(leaf.mo_args, "input_shape"))
        found = {name: list(o.get_partial_shape().to_shape()) for o in model.outputs for name in o.get_names()}
        wanted = (zoo.mo_value(leaf.mo_args, "output") or "").split(",")
        if wanted == [""]:  # no --output: the net's own last layer, a DetectionOutput here
            assert len(model.outputs) == 1 and list(model.outputs[0].get_shape())[-1] == 7, found
        else:
            assert sorted(n for n in found if n in wanted) == sorted(wanted), found
            assert len(model.outputs) == len(wanted), found
        for card in leaf.model_card.get("outputs", []):
            if "shape" in card:
                assert found[card["name"]] == card["shape"], (card, found)
    compiled = core.compile_model(model, "CPU")
    shape = list(port.get_shape())
    image = helpers_caffe.image_like(shape, 7).astype(np.float32)
    values = compiled({port.get_any_name(): image})
    for output in compiled.outputs:
        assert np.all(np.isfinite(values[output])), output.get_any_name()


def test_every_built_in_caffe_model_is_covered():
    caffe = sorted(leaf.name for name in BUILTIN.names() for leaf in BUILTIN.load(name).leaves()
                   if leaf.framework == "caffe")
    assert caffe == sorted(leaf.name for leaf in LEAVES) and len(caffe) == 29
