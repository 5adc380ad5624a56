"""The built-in Caffe zoo: an entry for each of the 29 Caffe models of Open Model Zoo 2021.4 (27
top-level names: mtcnn is a composite of three stages; 30 entries with the composite itself,
se-resnet-101 included).

Each entry validates, ``omz-info-dumper --all`` lists it, ``omz-downloader --dry_run --all`` plans
every one of its files, its model card agrees with its Model Optimizer arguments, and
``omz-converter --dry_run --backend native`` builds arguments the native front end accepts. The 7
models of ``../shared/fixtures/caffe_zoo/manifest.json`` (verified upstream copies) have exactly
the manifest's files (name, size, sha256, source), Model Optimizer arguments and postprocessing.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import SHARED_DIR, command, events
from omz_tools.registry import Registry, builtin_registry

# Open Model Zoo 2021.4's Caffe models (mtcnn is a composite: mtcnn-p, mtcnn-r, mtcnn-o).
CAFFE_ZOO = [
    "Sphereface", "alexnet", "caffenet", "densenet-121", "densenet-161", "densenet-169", "densenet-201",
    "face-detection-retail-0044", "googlenet-v1", "googlenet-v2", "mobilenet-ssd", "mobilenet-v1-1.0-224",
    "mobilenet-v2", "mtcnn", "pelee-coco", "se-inception", "se-resnet-50", "se-resnet-101", "se-resnet-152",
    "se-resnext-50", "se-resnext-101", "squeezenet1.0", "squeezenet1.1", "ssd300", "ssd512", "vgg16", "vgg19",
]
MTCNN_STAGES = ["mtcnn-p", "mtcnn-r", "mtcnn-o"]
MANIFEST = SHARED_DIR / "fixtures" / "caffe_zoo" / "manifest.json"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry([builtin_registry()])


@pytest.fixture(scope="module")
def leaves(registry) -> dict:
    """Leaf name -> Model, for every Caffe zoo model."""
    return {leaf.name: leaf for name in CAFFE_ZOO for leaf in registry.load(name).leaves()}


@pytest.fixture
def env(clean_env) -> dict:
    return clean_env


def run(name: str, *args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([command(name), *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


def mo_arg(model, key: str):
    return next((a.split("=", 1)[1] for a in model.mo_args if a.startswith(f"--{key}=")), None)


def test_29_models_in_30_entries(registry, leaves):
    assert len(CAFFE_ZOO) == 27
    assert set(CAFFE_ZOO) <= set(registry.names())
    assert len(leaves) == 29 and len(leaves) + 1 == 30  # the mtcnn composite is the 30th entry
    mtcnn = registry.load("mtcnn")
    assert [s.name for s in mtcnn.model_stages] == MTCNN_STAGES
    for leaf in leaves.values():
        assert leaf.framework == "caffe"
        assert leaf.mo_args and leaf.files
        assert leaf.license_url.startswith("https://")
        assert leaf.task_type in ("classification", "detection", "face_recognition")
        assert len(leaf.description) > 40


def test_model_card_agrees_with_the_model_optimizer_arguments(leaves):
    for name, leaf in leaves.items():
        [port] = leaf.model_card["inputs"]
        assert port["name"] == mo_arg(leaf, "input"), name
        assert port["shape"] == json.loads(mo_arg(leaf, "input_shape")), name
        mean = mo_arg(leaf, "mean_values")
        assert port.get("mean_values") == (json.loads(mean.split("data", 1)[1]) if mean else None), name
        outputs = mo_arg(leaf, "output")
        want = sorted(outputs.split(",")) if outputs else []
        assert sorted(o["name"] for o in leaf.model_card.get("outputs", [])) == want, name
        # The files the arguments read are files of the entry (or of its unpacked archive).
        names = {f.name.as_posix() for f in leaf.files}
        for key in ("input_model", "input_proto"):
            path = mo_arg(leaf, key).replace("$dl_dir/", "")
            assert path in names or any(n.endswith((".tar.gz", ".zip")) for n in names), (name, path)


def test_info_dumper_all_lists_every_caffe_zoo_model(env):
    result = run("omz-info-dumper", "--all", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    info = {m["name"]: m for m in json.loads(result.stdout)}
    assert set(CAFFE_ZOO) <= set(info)
    assert [s["name"] for s in info["mtcnn"]["model_stages"]] == MTCNN_STAGES
    for name in CAFFE_ZOO:
        assert info[name]["framework"] == "caffe"
        assert info[name]["precisions"] == ["FP16", "FP32"]
        for model in [info[name], *info[name]["model_stages"]]:
            assert model["model_config"] is None or model["model_config"].endswith("model.yml")
    result = run("omz-info-dumper", "--print_all", env=env)
    assert result.returncode == 0
    assert set(CAFFE_ZOO) <= set(result.stdout.split())


def test_downloader_dry_run_all_plans_every_file(env, leaves, registry, tmp_path):
    out = tmp_path / "out"
    result = run("omz-downloader", "--all", "--dry_run", "-o", out, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, leaf in leaves.items():
        for file in leaf.files:
            assert f"{file.name.as_posix()}  " in result.stdout, (name, file.name)
            where = file.source.url if file.source.kind == "http" else f"Google Drive file {file.source.id}"
            assert f"from origin {where}" in result.stdout, (name, file.source)
    every = [f for model in registry.load_all() for leaf in model.leaves() for f in leaf.files]
    assert f"To fetch: {len(every)} file(s)," in result.stdout
    assert f"({sum(f.size for f in every)} bytes)" in result.stdout
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


@pytest.mark.native
def test_every_entry_s_arguments_are_accepted_by_the_native_front_end(env, leaves, tmp_path):
    from omz_tools.convert.caffe import mo_args
    result = run("omz-converter", "--name", ",".join(CAFFE_ZOO), "--dry_run", "--backend", "native",
                 "-d", tmp_path / "dl", "--progress_format", "json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    planned = {}
    for event in events(result.stdout):
        if event.get("$type") == "model_conversion_command" and \
                event["command"][0] == "omz_tools.convert.caffe.convert":
            planned[event["model"]] = event["command"][1:]
    assert sorted(planned) == sorted(leaves)
    for name, args in planned.items():
        options = mo_args.parse(args)  # raises UnsupportedArgumentError naming what it cannot honour
        leaf = leaves[name]
        assert options.inputs == [mo_arg(leaf, "input")], name
        assert options.input_proto.endswith(mo_arg(leaf, "input_proto").replace("$dl_dir", "")), name


def _manifest() -> dict:
    if not MANIFEST.is_file():
        pytest.skip(f"{MANIFEST} is absent (the shared upstream fixtures are not on this machine)")
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def test_the_manifest_s_models_have_its_files_arguments_and_postprocessing(leaves):
    manifest = _manifest()
    assert len(manifest) == 7
    for name, entry in manifest.items():
        leaf = leaves[name]
        ours = [(f.name.as_posix(), f.size, f.checksum.algorithm, f.checksum.value, f.source.describe())
                for f in leaf.files]
        theirs = [(f["name"], f["size"], "sha256", f["sha256"], f["source"]) for f in entry["files"]]
        assert ours == theirs, name
        assert leaf.mo_args == entry["model_optimizer_args"], name
        steps = []
        for step in leaf.postprocessing:
            steps.append({"$type": "regex_replace", "file": step.file.as_posix(), "pattern": step.pattern.pattern,
                          "replacement": step.replacement, **({"count": step.count} if step.count else {})})
        assert steps == entry["postprocessing"], name


def test_every_entry_has_a_card_whose_links_resolve(leaves):
    import re
    for name in CAFFE_ZOO:
        card = builtin_registry() / "public" / name / "README.md"
        text = card.read_text(encoding="utf-8")
        assert text.startswith(f"# {name}\n"), card
        for stage in (s for s in MTCNN_STAGES if name == "mtcnn"):
            assert f"## {stage}\n" in text
        for target in re.findall(r"\]\(([^)#:]+)\)", text):  # relative links (licenses/...)
            assert (card.parent / target).resolve().is_file(), (card, target)
        assert leaves[name if name != "mtcnn" else "mtcnn-p"].license_url in text, card
