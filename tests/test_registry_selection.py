"""Model selection (--name, --list, --all, --print_all), registry order and shadowing, the se-resnet-101
entry as the info dumper shows it, the command aliases, and lazy loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import command, write_registry_files
from omz_tools.registry import Registry, builtin_registry
from omz_tools.registry import loader as registry_loader

SHA384 = "0123456789abcdef" * 6


def model_yml(description: str = "A test model", framework: str = "onnx") -> str:
    return f"""\
description: {description}
task_type: detection
framework: {framework}
license: https://example.com/LICENSE
files:
  - name: m.onnx
    size: 3
    checksum: {SHA384}
    source: http://127.0.0.1:1/m.onnx
model_optimizer_args: [--input_model=$dl_dir/m.onnx]
"""


COMPOSITE = """\
description: A composite
task_type: detection
framework: onnx
license: https://example.com/LICENSE
stages_order: [pipe-first, pipe-second]
"""


def make_registry(root: Path, models: dict) -> Path:
    return write_registry_files(root, {(f"{relative}/composite-model.yml" if text is COMPOSITE else relative): text
                                       for relative, text in models.items()})


@pytest.fixture
def registry(tmp_path) -> Path:
    return make_registry(tmp_path / "reg", {
        "public/alpha-1": model_yml(),
        "public/alpha-2": model_yml(),
        "public/Beta": model_yml(),
        "intel/gamma.v1_x": model_yml(),
        "intel/pipe": COMPOSITE,
        "intel/pipe/pipe-first": model_yml(),
        "intel/pipe/pipe-second": model_yml(),
    })


def run(*args, env, tool="omz-info-dumper") -> subprocess.CompletedProcess:
    return subprocess.run([command(tool), *map(str, args)], capture_output=True, text=True, env=env)


def names(result: subprocess.CompletedProcess) -> list:
    assert result.returncode == 0, result.stderr
    return [m["name"] for m in json.loads(result.stdout)]


# -- --name, --list, --all, --print_all ----------------------------------------------------------

@pytest.mark.parametrize("patterns, expected", [
    ("alpha-1", ["alpha-1"]),
    ("alpha-*", ["alpha-1", "alpha-2"]),
    ("alpha-?,Beta", ["alpha-1", "alpha-2", "Beta"]),
    ("Beta,alpha-[2]", ["Beta", "alpha-2"]),  # pattern order, not name order
    ("alpha-2,alpha-*", ["alpha-2", "alpha-1"]),  # deduplicated, first place kept
    ("gamma.v1_x", ["gamma.v1_x"]),
    ("pipe", ["pipe"]),  # the composite
    ("pipe-*", ["pipe-first", "pipe-second"]),  # its stages
    ("pipe*", ["pipe"]),  # the composite's own name matches: the composite, not its stages again
    ("pipe-second,pipe", ["pipe-second", "pipe"]),
])
def test_name_patterns(registry, clean_env, patterns, expected):
    assert names(run("--name", patterns, "--registry", registry, env=clean_env)) == expected


@pytest.mark.parametrize("pattern", ["beta", "ALPHA-1", "alpha", "alpha-1 ", "*.onnx"])
def test_name_no_match_is_case_sensitive(registry, clean_env, pattern):
    result = run("--name", f"alpha-1,{pattern}", "--registry", registry, env=clean_env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f'No matching models: "{pattern}"\n'


def test_empty_pattern_matches_nothing(registry, clean_env):
    result = run("--name", "alpha-1,", "--registry", registry, env=clean_env)
    assert (result.returncode, result.stderr) == (1, 'No matching models: ""\n')


def test_list_file(registry, clean_env, tmp_path):
    list_file = tmp_path / "models.lst"
    list_file.write_text("# the nightly set\n"
                         "Beta  --precisions FP16   # later tokens are ignored\n"
                         "\n"
                         "    alpha-*\n"
                         "'pipe-second'\n"
                         "# alpha-1 is here but commented out\n", encoding="utf-8")
    assert names(run("--list", list_file, "--registry", registry, env=clean_env)) == [
        "Beta", "alpha-1", "alpha-2", "pipe-second"]


def test_list_file_no_match(registry, clean_env, tmp_path):
    list_file = tmp_path / "models.lst"
    list_file.write_text("alpha-1\nzeta  # none\n", encoding="utf-8")
    result = run("--list", list_file, "--registry", registry, env=clean_env)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", 'No matching models: "zeta"\n')


def test_empty_list_file_selects_nothing(registry, clean_env, tmp_path):
    list_file = tmp_path / "empty.lst"
    list_file.write_text("# nothing\n", encoding="utf-8")
    assert names(run("--list", list_file, "--registry", registry, env=clean_env)) == []


def test_all_and_print_all(registry, clean_env):
    builtin = Registry([builtin_registry()]).names()  # the built-in registry always comes last
    assert "se-resnet-101" in builtin
    expected = sorted(["alpha-1", "alpha-2", "Beta", "gamma.v1_x", "pipe", *builtin])
    assert names(run("--all", "--registry", registry, env=clean_env)) == expected
    result = run("--print_all", "--registry", registry, env=clean_env)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == expected


def test_print_all_wins_over_other_selections(registry, clean_env):
    result = run("--print_all", "--name", "nothing-matches", "--all", "--registry", registry, env=clean_env)
    assert result.returncode == 0
    assert "se-resnet-101" in result.stdout.splitlines()


@pytest.mark.parametrize("args, message", [
    ([], 'one of "--print_all", "--all", "--name" or "--list" must be specified'),
    (["--all", "--name", "alpha-1"], 'at most one of "--all", "--name" or "--list" can be specified'),
    (["--name", "alpha-1", "--list", "LIST"], 'at most one of "--all", "--name" or "--list" can be specified'),
    (["--all", "--list", "LIST"], 'at most one of "--all", "--name" or "--list" can be specified'),
])
def test_usage_errors(registry, clean_env, tmp_path, args, message):
    (tmp_path / "m.lst").write_text("alpha-1\n")
    args = [str(tmp_path / "m.lst") if a == "LIST" else a for a in args]
    result = run(*args, "--registry", registry, env=clean_env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == f"Error: {message}"
    assert "Traceback" not in result.stderr


def test_list_file_missing_is_a_usage_error(clean_env, tmp_path):
    result = run("--list", tmp_path / "missing.lst", env=clean_env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "does not exist" in result.stderr


# -- registries: --registry (repeatable), OMZ_REGISTRY, built-in last --------------------------------

@pytest.fixture
def layered(tmp_path):
    """Four registries, each with its own 'shared' model and one model of its own."""
    roots = {}
    for label in ("first", "second", "env1", "env2"):
        roots[label] = make_registry(tmp_path / label, {
            "public/shared": model_yml(description=f"shared from {label}"),
            f"public/only-{label}": model_yml(description=f"only in {label}"),
        })
    return roots


def descriptions(result) -> dict:
    assert result.returncode == 0, result.stderr
    return {m["name"]: m["description"] for m in json.loads(result.stdout)}


def test_registry_order_and_shadowing(layered, clean_env):
    env = dict(clean_env, OMZ_REGISTRY=os.pathsep.join([str(layered["env1"]), "", str(layered["env2"])]))
    result = run("--all", "--registry", layered["first"], "--registry", layered["second"], env=env)
    builtin = Registry([builtin_registry()]).names()
    assert descriptions(result) == {
        "only-env1": "only in env1", "only-env2": "only in env2", "only-first": "only in first",
        "only-second": "only in second", **descriptions(run("--name", ",".join(builtin), env=env)),
        "shared": "shared from first",
    }
    # without --registry, OMZ_REGISTRY's first folder wins
    assert descriptions(run("--name", "shared", env=env)) == {"shared": "shared from env1"}
    # the second --registry shadows OMZ_REGISTRY
    assert descriptions(run("--name", "shared", "--registry", layered["second"], env=env)) == {
        "shared": "shared from second"}
    # within OMZ_REGISTRY, order counts too
    env_reversed = dict(clean_env, OMZ_REGISTRY=os.pathsep.join([str(layered["env2"]), str(layered["env1"])]))
    assert descriptions(run("--name", "shared", env=env_reversed)) == {"shared": "shared from env2"}


def test_registry_model_config_points_at_the_winning_registry(layered, clean_env):
    result = run("--name", "shared", "--registry", layered["second"], "--registry", layered["first"], env=clean_env)
    [info] = json.loads(result.stdout)
    assert info["model_config"] == str(layered["second"].resolve() / "public" / "shared" / "model.yml")


def test_own_se_resnet_101_shadows_the_builtin_one(tmp_path, clean_env):
    own = make_registry(tmp_path / "own", {"experimental/se-resnet-101": model_yml("my own SE-ResNet-101")})
    [info] = json.loads(run("--name", "se-resnet-101", "--registry", own, env=clean_env).stdout)
    assert (info["description"], info["framework"], info["subdirectory"]) == (
        "my own SE-ResNet-101", "onnx", "experimental/se-resnet-101")
    [info] = json.loads(run("--name", "se-resnet-101", env=dict(clean_env, OMZ_REGISTRY=str(own))).stdout)
    assert info["description"] == "my own SE-ResNet-101"
    result = run("--print_all", "--registry", own, env=clean_env)
    assert result.stdout.splitlines().count("se-resnet-101") == 1


def test_shadowed_broken_model_is_never_read(tmp_path, clean_env):
    later = make_registry(tmp_path / "later", {"public/m": "files: [broken\n"})
    earlier = make_registry(tmp_path / "earlier", {"public/m": model_yml("the good one")})
    result = run("--all", "--registry", earlier, "--registry", later, env=clean_env)
    assert descriptions(result)["m"] == "the good one"


def test_registry_api_roots_order(tmp_path):
    registry = Registry.from_options([tmp_path / "a", tmp_path / "b"],
                                     env={"OMZ_REGISTRY": os.pathsep.join([str(tmp_path / "c"), str(tmp_path / "d")])})
    assert registry.roots == [(tmp_path / x).resolve() for x in "abcd"] + [builtin_registry().resolve()]
    assert Registry.from_options([], env={}, include_builtin=False).roots == []


# -- the built-in se-resnet-101 entry -------------------------------------------------------------

def test_info_dumper_shows_se_resnet_101_facts(clean_env):
    result = run("--name", "se-resnet-101", env=clean_env)
    assert result.returncode == 0 and result.stderr == ""
    [info] = json.loads(result.stdout)
    assert list(info)[:12] == ["name", "composite_model_name", "description", "framework", "license_url",
                               "accuracy_config", "model_config", "precisions", "subdirectory", "task_type",
                               "input_info", "model_stages"]
    assert info["name"] == "se-resnet-101"
    assert info["composite_model_name"] is None
    assert info["description"] == "ResNet-101 with Squeeze-and-Excitation blocks <https://arxiv.org/abs/1709.01507>"
    assert info["framework"] == "caffe"
    assert info["license_url"] == "https://raw.githubusercontent.com/hujie-frank/SENet/master/LICENSE"
    assert info["model_config"] == str(builtin_registry().resolve() / "public/se-resnet-101/model.yml")
    assert info["precisions"] == ["FP16", "FP32"]
    assert info["subdirectory"] == "public/se-resnet-101"
    assert info["task_type"] == "classification"
    assert info["model_stages"] == []
    assert info["files"] == [
        {"name": "se-resnet-101.prototxt", "size": 98677,
         "sha256": "c97375db60ad04e1196966c7149bd5cc98fbb9a34bdde511c26c922ba791903d",
         "source": "https://raw.githubusercontent.com/hujie-frank/SENet/369374b0678907a0e45c6f267256c7c34203177e/"
                   "models/SE-ResNet-101.prototxt"},
        {"name": "se-resnet-101.caffemodel", "size": 197806200,
         "sha256": "09777ce1202087954ee34ae2566cf611d03d2d8195ced0fe51b612ebf951d729",
         "source": "https://storage.openvinotoolkit.org/repositories/open_model_zoo/public/2021.4/se-resnet-101/"
                   "SE-ResNet-101.caffemodel"},
    ]
    card = info["model_card"]
    assert (card["mparams"], card["gflops"], card["accuracy"]) == (49.274, 15.239, {"top1": 78.252, "top5": 94.206})
    [data] = card["inputs"]
    assert (data["name"], data["shape"], data["layout"], data["channel_order"], data["mean_values"]) == (
        "data", [1, 3, 224, 224], "NCHW", "BGR", [104.0, 117.0, 123.0])
    assert data["mean_baked_in"] is True
    [prob] = card["outputs"]
    assert (prob["name"], prob["shape"], prob["kind"]) == ("prob", [1, 1000], "probabilities")


def test_se_resnet_101_model_optimizer_args():
    model = Registry([builtin_registry()]).load("se-resnet-101")
    assert model.mo_args == [
        "--input_shape=[1,3,224,224]", "--input=data", "--mean_values=data[104.0,117.0,123.0]", "--output=prob",
        "--input_model=$dl_dir/se-resnet-101.caffemodel", "--input_proto=$dl_dir/se-resnet-101.prototxt"]
    assert model.quantizable is True  # YAML 1.1 'yes', as Open Model Zoo writes it


@pytest.mark.parametrize("tool", ["downloader.py", "omz-downloader", "converter.py", "omz-converter",
                                  "info_dumper.py", "omz-info-dumper"])
def test_every_command_lists_se_resnet_101(clean_env, tool):
    result = run("--print_all", env=clean_env, tool=tool)
    assert result.returncode == 0, result.stderr
    assert "se-resnet-101" in result.stdout.splitlines()


@pytest.mark.parametrize("tool, name", [("downloader.py", "omz-downloader"), ("omz-converter", "omz-converter"),
                                        ("info_dumper.py", "omz-info-dumper")])
def test_every_command_prints_its_version(clean_env, tool, name):
    from omz_tools.version import __version__
    result = run("--version", env=clean_env, tool=tool)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{name} (omz_tools) {__version__}\n"


@pytest.mark.parametrize("module", ["omz_tools.info_dumper", "omz_tools.downloader", "omz_tools.converter"])
def test_python_dash_m(clean_env, module):
    result = subprocess.run([sys.executable, "-m", module, "--print_all"], capture_output=True, text=True,
                            env=clean_env)
    assert result.returncode == 0, result.stderr
    assert "se-resnet-101" in result.stdout.splitlines()


def test_python_dash_m_info_dumper_same_as_the_script(clean_env):
    by_module = subprocess.run([sys.executable, "-m", "omz_tools.info_dumper", "--name", "se-resnet-101"],
                               capture_output=True, text=True, env=clean_env)
    assert by_module.returncode == 0
    assert by_module.stdout == run("--name", "se-resnet-101", env=clean_env).stdout


# -- lazy loading ---------------------------------------------------------------------------------

@pytest.fixture
def half_broken(tmp_path) -> Path:
    return make_registry(tmp_path / "half-broken", {
        "public/broken-yaml": "files: [\n",
        "public/broken-schema": model_yml().replace("size: 3", "size: -3"),
        "public/fine": model_yml("fine"),
    })


def test_broken_model_elsewhere_does_not_stop_name_selection(half_broken, clean_env):
    assert names(run("--name", "se-resnet-101", "--registry", half_broken, env=clean_env)) == ["se-resnet-101"]
    assert names(run("--name", "fine", "--registry", half_broken, env=clean_env)) == ["fine"]
    result = run("--print_all", "--registry", half_broken, env=clean_env)
    assert result.returncode == 0
    assert result.stdout.splitlines() == sorted(["broken-schema", "broken-yaml", "fine",
                                                 *Registry([builtin_registry()]).names()])


def test_all_reports_the_broken_model(half_broken, clean_env):
    result = run("--all", "--registry", half_broken, env=clean_env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Registry error: {half_broken.resolve()}/public/broken-")
    assert "Traceback" not in result.stderr


def test_only_the_selected_model_is_parsed(half_broken, monkeypatch):
    read = []
    real = registry_loader._load_yaml

    def counting(path, *args):
        read.append(Path(path))
        return real(path, *args)

    monkeypatch.setattr(registry_loader, "_load_yaml", counting)
    registry = Registry.from_options([half_broken], env={})
    assert [m.name for m in registry.match("se-resnet-101")] == ["se-resnet-101"]
    assert read == [builtin_registry().resolve() / "public" / "se-resnet-101" / "model.yml"]
    assert "broken-yaml" in registry.names()  # listing reads no YAML at all
    assert len(read) == 1


@pytest.mark.parametrize("content, message", [
    (b"alpha-1\nBeta 'unbalanced\n",
     "{list}: line 2: expected shell-like tokens, found \"Beta 'unbalanced\" (no closing quotation)"),
    (b"alpha-1\n\xff\xfe\n", "{list}: expected a UTF-8 text file, found byte 0xff at offset 8"),
])
def test_unreadable_list_file_is_a_usage_error(registry, clean_env, tmp_path, content, message):
    list_file = tmp_path / "models.lst"
    list_file.write_bytes(content)
    result = run("--list", list_file, "--registry", registry, env=clean_env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "Error: " + message.replace("{list}", str(list_file))


def test_yaml_is_parsed_with_the_c_loader_when_available(monkeypatch):
    yaml = pytest.importorskip("yaml")
    if not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML was built without libyaml")
    loaders = []
    real = yaml.CSafeLoader

    class Recording(real):
        def __init__(self, stream):
            loaders.append(real)
            super().__init__(stream)

    monkeypatch.setattr(yaml, "CSafeLoader", Recording)
    Registry([builtin_registry()]).load("se-resnet-101")
    assert loaders == [real]
