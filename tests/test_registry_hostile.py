"""Registry files written to hurt: each is refused at load time in one line naming the file, the model,
the key path, what was expected and what was found, by all three commands, without a traceback, a
hang or unbounded memory.

- a model.yml (or composite-model.yml) that is a FIFO, a device or a folder: only regular files are
  opened, without blocking;
- YAML aliases expanding without bound ("billion laughs"), recursive aliases, nesting too deep,
  integers of thousands of digits;
- values JSON cannot hold (dates, sets, binary data) in model_card, model_info, input_info, and
  model_card fields of the wrong type;
- file names the tools keep their own state under (``w.part``, ``w.part.json``, ``.w.lock``,
  ``.omz_verified.json``, anything starting with ``.omz_``);
- two selected models writing the same output path (nested model folders).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import command
from omz_tools.registry import Registry, RegistryError, select_models

SHA256 = "c97375db60ad04e1196966c7149bd5cc98fbb9a34bdde511c26c922ba791903d"
HEAD = """\
description: A test model
task_type: classification
framework: onnx
license: https://example.com/LICENSE
model_optimizer_args:
  - --input_model=$dl_dir/m.onnx
"""


def files(*names: str) -> str:
    return "files:\n" + "".join(f"  - name: {name}\n    size: 1\n    sha256: {SHA256}\n"
                                f"    source: https://example.com/x\n" for name in names)


def model(extra: str = "", names=("m.onnx",)) -> str:
    return HEAD + files(*names) + extra


def laughs(levels: int = 9) -> str:
    """A "billion laughs": each level lists the previous one ten times (10**levels strings)."""
    lines = ['  l0: &l0 "lol lol lol lol lol lol lol lol"']
    for level in range(1, levels + 1):
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


M = '{root}/public/m/model.yml: model "m": '
BOUND = "expected YAML aliases to expand to at most 100000 nodes and characters in all, found more"
PLAIN = "expected a plain value (null, boolean, number, string, list or mapping), found"
STATE = ("expected a name the tools do not keep their own state under (no part starting with '.omz_', none "
         "ending with '.part' or '.part.json', no hidden '.lock', '.tmp' or '.unpacking' name), found")

# (id, model.yml text, the exact message after "Registry error: ")
HOSTILE = [
    ("billion laughs used in description",
     HEAD.replace("description: A test model\n", "anchors:\n" + laughs() + "description: *l9\n") + files("m.onnx"),
     M + "anchors.l4[2]: " + BOUND + " (repeating the anchor at line 5, column 7)"),
    ("billion laughs in model_card",
     model("model_card:\n" + laughs()),
     M + "model_card.l4[2]: " + BOUND + " (repeating the anchor at line 16, column 7)"),
    ("recursive alias in model_card",
     model("model_card: &card {inputs: [*card]}\n"),
     M + "model_card.inputs[0]: expected no recursive YAML alias, found an alias inside its own anchor (the "
         "anchor at line 12, column 13)"),
    ("recursive alias in input_info",
     model("input_info: &i [{name: data, shape: *i}]\n"),
     M + "input_info[0].shape: expected no recursive YAML alias, found an alias inside its own anchor (the "
         "anchor at line 12, column 13)"),
    ("integer of 5000 digits in model_card",
     model("model_card: {mparams: " + "9" * 5000 + "}\n"),
     M + "model_card.mparams: expected an integer of at most 100 digits, found one of 5000 characters at "
         "line 12, column 23"),
    ("integer of 5000 digits as a size",
     HEAD + files("m.onnx").replace("size: 1", "size: " + "1" * 5000),
     M + "files[0].size: expected an integer of at most 100 digits, found one of 5000 characters at "
         "line 9, column 11"),
    ("integer beyond 64 bits in model_info",
     model("model_info: {labels: [1, 99999999999999999999]}\n"),
     M + "model_info.labels[1]: expected an integer of at most 64 bits, found integer 99999999999999999999"),
    ("nesting too deep",
     model("model_card: {x: " + "[" * 70 + "]" * 70 + "}\n"),
     M + "model_card.x" + "[0]" * 63 + ": expected at most 64 levels of nesting, found more at line 12, column 80"),
    ("a date in model_card",
     model("model_card: {released: 2020-01-01}\n"),
     M + "model_card.released: " + PLAIN + " date datetime.date(2020, 1, 1)"),
    ("a date that is no date",
     model("model_card: {released: 2020-13-45}\n"),
     M + "expected YAML values that can be read, found one that cannot (month must be in 1..12)"),
    ("a boolean that is no boolean (found by the fuzz)",
     model("quantizable: !!bool maybe\n"),
     M + "expected YAML values that can be read, found one that cannot ('maybe')"),
    ("a set in model_info",
     model("model_info: {s: !!set {a}}\n"),
     M + "model_info.s: " + PLAIN + " set {'a'}"),
    ("binary data in input_info",
     model("input_info: [{name: data, layout: !!binary aGVsbG8=}]\n"),
     M + "input_info[0].layout: " + PLAIN + " binary data b'hello'"),
    ("a non-string key in model_card",
     model("model_card: {accuracy: {1: 2}}\n"),
     M + "model_card.accuracy: expected a mapping with string keys, found the key integer 1"),
    ("NaN in model_card",
     model("model_card: {gflops: .nan}\n"),
     M + "model_card.gflops: expected a finite number, found number nan"),
    ("model_card.mparams not a number",
     model("model_card: {mparams: abc}\n"),
     M + "model_card.mparams: expected a non-negative number, found string 'abc'"),
    ("model_card.inputs not a list",
     model("model_card: {inputs: 5}\n"),
     M + "model_card.inputs: expected a list, found integer 5"),
    ("model_card input shape not a list",
     model("model_card: {inputs: [{name: data, shape: 5}]}\n"),
     M + "model_card.inputs[0].shape: expected a list, found integer 5"),
    ("model_card input shape of strings",
     model("model_card: {inputs: [{name: data, shape: [1, x]}]}\n"),
     M + "model_card.inputs[0].shape[1]: expected an integer (a dimension), found string 'x'"),
    ("model_card input without a name",
     model("model_card: {outputs: [{shape: [1]}]}\n"),
     M + "model_card.outputs[0].name: expected this required key, found no such key"),
    ("model_card mean_baked_in not a boolean",
     model("model_card: {inputs: [{name: data, mean_baked_in: 'yes'}]}\n"),
     M + "model_card.inputs[0].mean_baked_in: expected true or false, found string 'yes'"),
    ("model_card accuracy not a number",
     model("model_card: {accuracy: {top1: [1]}}\n"),
     M + "model_card.accuracy.top1: expected a non-negative number, found list [1]"),
    ("model_info confidence_threshold not a number",
     model("model_info: {confidence_threshold: high}\n"),
     M + "model_info.confidence_threshold: expected a non-negative number, found string 'high'"),
    ("model_info labels not a list",
     model("model_info: {labels: cat}\n"),
     M + "model_info.labels: expected a list, found string 'cat'"),
    ("input_info shape of strings",
     model("input_info: [{name: data, shape: [a]}]\n"),
     M + "input_info[0].shape[0]: expected an integer (a dimension), found string 'a'"),
    ("a file named like a resumable download",
     model(names=("w", "w.part")), M + "files[1].name: " + STATE + " 'w.part'"),
    ("a file named like a download's resume record",
     model(names=("v", "v.part.json")), M + "files[1].name: " + STATE + " 'v.part.json'"),
    ("a file named like a lock",
     model(names=("u", ".u.lock")), M + "files[1].name: " + STATE + " '.u.lock'"),
    ("a file named like the verification record",
     model(names=(".omz_verified.json",)), M + "files[0].name: " + STATE + " '.omz_verified.json'"),
    ("a file named like the conversion record",
     model(names=("FP32/.omz_converted.json",)), M + "files[0].name: " + STATE + " 'FP32/.omz_converted.json'"),
    ("a folder named like the tools' state",
     model(names=(".omz_convert.m.tmp/m.xml",)), M + "files[0].name: " + STATE + " '.omz_convert.m.tmp/m.xml'"),
    ("a postprocessing file named like a resumable download",
     model("postprocessing:\n  - {$type: unpack_archive, file: m.zip.part, format: zip}\n"),
     M + "postprocessing[0].file: " + STATE + " 'm.zip.part'"),
    ("a file inside another file",
     model(names=("b", "b/w.bin")), M + "files[1].name: expected a file outside the other files' paths, found "
                                        "'b/w.bin' inside the file 'b'"),
]


def make(root: Path, layout: dict) -> Path:
    for relative, text in layout.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    return root


def run(name: str, *args, env: dict) -> subprocess.CompletedProcess:
    # A generous guard: before the fix some of these hung (a FIFO) or grew to gigabytes.
    return subprocess.run([command(name), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


def run_all_three(root: Path, names: str, out: Path, env: dict) -> list:
    return [run("omz-info-dumper", "--name", names, "--registry", root, env=env),
            run("omz-downloader", "--name", names, "--registry", root, "-o", out, "--offline", env=env),
            run("omz-converter", "--name", names, "--registry", root, "-d", out, "--dry_run", env=env)]


@pytest.mark.parametrize("text, message", [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_entry_refused_by_every_command(tmp_path, clean_env, text, message):
    root = make(tmp_path / "registry", {"public/m/model.yml": text})
    expected = "Registry error: " + message.replace("{root}", str(root.resolve()))
    for result in run_all_three(root, "m", tmp_path / "out", clean_env):
        assert "Traceback" not in result.stderr
        assert result.stderr.splitlines() == [expected], result.args[0]
        assert result.returncode == 1
        assert result.stdout == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, message", [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_entry_refused_by_the_api(tmp_path, text, message):
    root = make(tmp_path / "registry", {"public/m/model.yml": text})
    with pytest.raises(RegistryError) as info:
        Registry([root]).load("m")
    assert str(info.value) == message.replace("{root}", str(root.resolve()))


def test_anchors_and_aliases_within_the_bound_still_work(tmp_path, clean_env):
    text = model("model_card:\n  inputs: &ports [{name: data, shape: [1, 3, 8, 8]}]\n  outputs: *ports\n"
                 "model_info: {labels: &l [a, b, c], anchors: *l}\n")
    root = make(tmp_path / "registry", {"public/m/model.yml": text})
    result = run("omz-info-dumper", "--name", "m", "--registry", root, env=clean_env)
    assert result.returncode == 0, result.stderr
    [info] = json.loads(result.stdout)
    assert info["model_card"]["outputs"] == [{"name": "data", "shape": [1, 3, 8, 8]}]


# -- files that are not regular files --------------------------------------------------------------

@pytest.mark.parametrize("config", ["model.yml", "composite-model.yml"])
def test_a_fifo_registry_file_is_refused_without_blocking(tmp_path, clean_env, config):
    root = tmp_path / "registry"
    folder = root / "public" / "m"
    folder.mkdir(parents=True)
    if config == "composite-model.yml":
        make(root, {"public/m/m-stage/model.yml": model()})
    os.mkfifo(folder / config)
    expected = [f'Registry error: {folder.resolve() / config}: model "m": expected a regular file, '
                'found a named pipe (FIFO)']
    for result in run_all_three(root, "m", tmp_path / "out", clean_env):
        assert result.stderr.splitlines() == expected, result.args[0]
        assert result.returncode == 1


def test_a_device_registry_file_is_refused(tmp_path, clean_env):
    root = make(tmp_path / "registry", {"public/good/model.yml": model()})
    (root / "public" / "m").mkdir()
    (root / "public" / "m" / "model.yml").symlink_to("/dev/zero")
    result = run("omz-info-dumper", "--name", "m", "--registry", root, env=clean_env)
    assert result.stderr.splitlines() == [
        f'Registry error: {root.resolve()}/public/m/model.yml: model "m": expected a regular file, '
        'found a character device']
    assert result.returncode == 1
    # The other models of the registry are unaffected.
    assert run("omz-info-dumper", "--name", "good", "--registry", root, env=clean_env).returncode == 0


def test_a_huge_registry_file_is_refused(tmp_path, clean_env):
    root = make(tmp_path / "registry", {"public/m/model.yml": model() + "# " + "x" * (5 << 20) + "\n"})
    result = run("omz-info-dumper", "--name", "m", "--registry", root, env=clean_env)
    assert result.stderr.splitlines() == [
        f'Registry error: {root.resolve()}/public/m/model.yml: model "m": expected a file of at most 4 MiB, '
        'found a larger one']


# -- output paths shared by two selected models ------------------------------------------------------

def nested_registry(root: Path) -> Path:
    # public/a writes b/w.bin, that is public/a/b/w.bin; public/a/b (model b) writes w.bin there too.
    return make(root, {"public/a/model.yml": model(names=("b/w.bin",)),
                       "public/a/b/model.yml": model(names=("w.bin",))})


def test_two_models_writing_one_output_path_are_refused_naming_both(tmp_path, clean_env):
    root = nested_registry(tmp_path / "registry")
    real = root.resolve()
    expected = [f'Registry error: {real}/public/a/b/model.yml: model "b": files[0].name: expected an output path no '
                f'other selected model uses, found public/a/b/w.bin, which overlaps public/a/b/w.bin of model "a" '
                f'(files[0].name in {real}/public/a/model.yml)']
    for result in run_all_three(root, "a,b", tmp_path / "out", clean_env):
        assert "Traceback" not in result.stderr
        assert result.stderr.splitlines() == expected, result.args[0]
        assert result.returncode == 1
    assert not (tmp_path / "out").exists()
    # Each alone is fine.
    for name in ("a", "b"):
        assert run("omz-info-dumper", "--name", name, "--registry", root, env=clean_env).returncode == 0


def test_a_file_where_another_model_has_its_folder_is_refused(tmp_path):
    root = make(tmp_path / "registry", {"public/a/model.yml": model(names=("b",)),
                                        "public/a/b/model.yml": model(names=("w.bin",))})
    with pytest.raises(RegistryError) as info:
        select_models(Registry([root]), name="a,b")
    assert str(info.value).endswith('files[0].name: expected an output path no other selected model uses, found '
                                    f'public/a/b/w.bin, which overlaps public/a/b of model "a" (files[0].name in '
                                    f'{root.resolve()}/public/a/model.yml)')
    with pytest.raises(RegistryError):
        select_models(Registry([root]), name="b,a")


def test_overlap_before_the_fix_replaced_a_file(tmp_path, clean_env, httpserver):
    """What the refusal prevents: both models downloading into one path, one file replacing the other."""
    import hashlib
    first, second = b"model a's weights", b"model b's weights, different"
    httpserver.expect_request("/a").respond_with_data(first)
    httpserver.expect_request("/b").respond_with_data(second)

    def entry(name, data, url):
        return (HEAD + f"files:\n  - name: {name}\n    size: {len(data)}\n"
                f"    sha256: {hashlib.sha256(data).hexdigest()}\n    source: {url}\n")
    root = make(tmp_path / "registry", {"public/a/model.yml": entry("b/w.bin", first, httpserver.url_for("/a")),
                                        "public/a/b/model.yml": entry("w.bin", second, httpserver.url_for("/b"))})
    out = tmp_path / "out"
    result = run("omz-downloader", "--name", "a,b", "--registry", root, "-o", out, env=clean_env)
    assert result.returncode == 1
    assert 'model "a"' in result.stderr and 'model "b"' in result.stderr
    assert len(httpserver.log) == 0
