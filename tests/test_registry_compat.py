"""Our info dumper against openvino-dev 2024.6's omz_info_dumper, on openvino-dev's own registry.

For every model of theirs, our JSON object must start with exactly their keys, in their order, with
their values (recursively, model_stages included); our extra keys (files, model_card) may follow.
Our commands always add the built-in registry last, so our output also holds se-resnet-101 (which
openvino-dev 2024.6 no longer ships); the tests take those built-in names out before comparing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import VENV_BIN, command
from omz_tools.registry import Registry, builtin_registry

THEIR_MODEL_COUNT = 248  # top-level models of openvino-dev 2024.6 (264 model.yml files)


def _their_tool() -> str:
    path = VENV_BIN / "omz_info_dumper"
    if path.exists():
        return str(path)
    found = shutil.which("omz_info_dumper")
    if found is None:
        pytest.skip("openvino-dev's omz_info_dumper is not installed (pip install openvino-dev==2024.6.0)")
    return found


def _their_registry() -> Path:
    # Their modules live in the omz_tools folder our package shares (our __init__ extends __path__).
    spec = importlib.util.find_spec("omz_tools.omz_info_dumper")
    if spec is None or spec.origin is None:
        pytest.skip("openvino-dev's omz_tools.omz_info_dumper module is not installed")
    models = Path(spec.origin).resolve().parent / "models"
    if not models.is_dir():
        pytest.skip(f"openvino-dev's registry folder {models} is missing")
    return models


@pytest.fixture(scope="module")
def env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMZ_REGISTRY", "OMZ_MIRROR", "OMZ_OFFLINE")}
    env["CI"] = "true"  # keeps openvino-dev's telemetry quiet
    return env


@pytest.fixture(scope="module")
def theirs(env):
    tool, registry = _their_tool(), _their_registry()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([tool, *args], capture_output=True, text=True, env=env)
    run.registry = registry
    return run


@pytest.fixture(scope="module")
def ours(env, theirs):
    tool = command("omz-info-dumper")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([tool, *args, "--registry", str(theirs.registry)], capture_output=True, text=True,
                              env=env)
    return run


@pytest.fixture(scope="module")
def builtin_names() -> set:
    return set(Registry([builtin_registry()]).names())


def assert_same(our: object, their: object, where: str) -> None:
    """Our value equals theirs; in mappings their keys come first, in their order (ours may follow)."""
    if isinstance(their, dict):
        assert isinstance(our, dict), where
        assert list(our)[:len(their)] == list(their), f"{where}: keys differ"
        for key in their:
            assert_same(our[key], their[key], f"{where}.{key}")
    elif isinstance(their, list):
        assert isinstance(our, list) and len(our) == len(their), f"{where}: {our!r} != {their!r}"
        for i, (a, b) in enumerate(zip(our, their)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert type(our) is type(their) and our == their, f"{where}: ours {our!r}, theirs {their!r}"


def compare(our_out: str, their_out: str, builtin_names: set) -> list:
    our_models = [m for m in json.loads(our_out) if m["name"] not in builtin_names]
    their_models = json.loads(their_out)
    assert [m["name"] for m in our_models] == [m["name"] for m in their_models]
    for our, their in zip(our_models, their_models):
        assert_same(our, their, their["name"])
    return their_models


@pytest.fixture(scope="module")
def all_dumps(ours, theirs):
    their = theirs("--all")
    assert their.returncode == 0, their.stderr
    our = ours("--all")
    assert our.returncode == 0, our.stderr
    assert our.stderr == ""
    return our.stdout, their.stdout


def test_their_registry_is_the_expected_one(theirs):
    assert len(list(theirs.registry.rglob("model.yml"))) == 264


def test_all_models_same_objects(all_dumps, builtin_names):
    our_out, their_out = all_dumps
    their_models = compare(our_out, their_out, builtin_names)
    assert len(their_models) == THEIR_MODEL_COUNT
    assert sum(1 for m in their_models if m["model_stages"]) == 12  # composites compared stage by stage


def test_all_adds_exactly_the_builtin_models(all_dumps, builtin_names):
    our_out, their_out = all_dumps
    our_names = [m["name"] for m in json.loads(our_out)]
    their_names = [m["name"] for m in json.loads(their_out)]
    assert "se-resnet-101" in builtin_names and "se-resnet-101" not in their_names
    assert our_names == sorted(set(their_names) | builtin_names)
    [se] = [m for m in json.loads(our_out) if m["name"] == "se-resnet-101"]
    assert se["model_config"] == str(builtin_registry().resolve() / "public" / "se-resnet-101" / "model.yml")


def test_all_is_the_full_json_text_of_theirs_plus_extra_keys(all_dumps, builtin_names):
    """Same JSON layout too: after dropping our extra keys, the text matches theirs byte for byte."""
    our_out, their_out = all_dumps
    kept = []
    for model in json.loads(our_out):
        if model["name"] in builtin_names:
            continue
        for obj in [model, *model["model_stages"]]:
            obj.pop("files")
            obj.pop("model_card")
        kept.append(model)
    assert json.dumps(kept, indent=4) + "\n" == their_out


def test_print_all_same_names(ours, theirs, builtin_names):
    their = theirs("--print_all")
    our = ours("--print_all")
    assert their.returncode == our.returncode == 0
    their_names = their.stdout.splitlines()
    assert len(their_names) == THEIR_MODEL_COUNT
    assert our.stdout.splitlines() == sorted(set(their_names) | builtin_names)


NAME_PATTERNS = [
    # plain names, wildcards, character classes, duplicates (kept once, first place)
    "resnet-50-pytorch,yolo-v3-t*,mobilenet-v2-1.?-224,resnet-50-pytorch",
    # composite-stage patterns: the stages alone; a composite and one of its own stages
    "text-recognition-001[56]-*coder,wavernn-r?n",
    "action-recognition-0001,action-recognition-0001-encoder,*-duration-prediction",
    # a pattern matching a composite by name selects the composite only, not its stages again
    "text-spotting-0005*",
    "[ab]*",
]


@pytest.mark.parametrize("patterns", NAME_PATTERNS)
def test_name_patterns_same_selection(ours, theirs, builtin_names, patterns):
    their = theirs("--name", patterns)
    our = ours("--name", patterns)
    assert their.returncode == our.returncode == 0, (their.stderr, our.stderr)
    assert compare(our.stdout, their.stdout, builtin_names)


def test_name_pattern_also_matching_a_builtin_model(ours, theirs, builtin_names):
    their = theirs("--name", "*resnet*")
    our = ours("--name", "*resnet*")
    assert their.returncode == our.returncode == 0
    compare(our.stdout, their.stdout, builtin_names)
    our_names = [m["name"] for m in json.loads(our.stdout)]
    assert "se-resnet-101" in our_names
    assert our_names == sorted(our_names)


def test_list_file_same_selection(tmp_path, ours, theirs, builtin_names):
    list_file = tmp_path / "models.lst"
    list_file.write_text(
        "# models for the nightly job\n"
        "resnet-50-pytorch   extra tokens are ignored\n"
        "\n"
        "   \n"
        "'wavernn-*'  # a quoted pattern, then a comment\n"
        "text-spotting-0005-detector\n"
        "formula-recognition-medium-scan-0001-im2latex-*\n"
        "mobilenet-v2*# a comment right after the token\n"
        "resnet-50-pytorch\n",
        encoding="utf-8")
    their = theirs("--list", str(list_file))
    our = ours("--list", str(list_file))
    assert their.returncode == our.returncode == 0, (their.stderr, our.stderr)
    models = compare(our.stdout, their.stdout, builtin_names)
    assert [m["name"] for m in models][:4] == [
        "resnet-50-pytorch", "wavernn-upsampler", "wavernn-rnn", "text-spotting-0005-detector"]


@pytest.mark.parametrize("patterns, bad", [
    ("resnet-50-pytorch,no-such-model*", "no-such-model*"),
    ("AlexNet", "AlexNet"),  # case-sensitive
    ("Resnet-50-pytorch", "Resnet-50-pytorch"),
])
def test_no_match_same_message(ours, theirs, patterns, bad):
    their = theirs("--name", patterns)
    our = ours("--name", patterns)
    assert their.returncode == our.returncode == 1
    assert their.stderr == our.stderr == f'No matching models: "{bad}"\n'
    assert their.stdout == our.stdout == ""


@pytest.mark.parametrize("args", [[], ["--all", "--name", "x"], ["--name", "x", "--list", "models.lst"]])
def test_usage_errors_same_exit_code_and_text(tmp_path, ours, theirs, args):
    (tmp_path / "models.lst").write_text("x\n")
    args = [str(tmp_path / a) if a == "models.lst" else a for a in args]
    their = theirs(*args)
    our = ours(*args)
    assert their.returncode == our.returncode == 2
    their_error = their.stderr.strip().splitlines()[-1].split("error: ", 1)[1]
    our_error = our.stderr.strip().splitlines()[-1].split("Error: ", 1)[1]
    assert our_error == their_error
