"""Broken (and valid) model.yml / composite-model.yml snippets, each in its own temporary registry.

Every broken case is run through ``omz-info-dumper --name <model> --registry <tmp>`` and must exit 1
with exactly one message line on stderr (no traceback) naming the registry file, the model, the key
path, what was expected and what was found. The same message must come out of the Python API.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import command, write_registry_files
from omz_tools.registry import Registry, RegistryError, RegexReplace, UnpackArchive

SHA384 = "0123456789abcdef" * 6
SHA256 = "c97375db60ad04e1196966c7149bd5cc98fbb9a34bdde511c26c922ba791903d"

HEAD = """\
description: A test model
task_type: classification
framework: onnx
license: https://example.com/LICENSE
"""
MO_ARGS = """\
model_optimizer_args:
  - --input_model=$dl_dir/m.onnx
"""


def file_entry(name="m.onnx", size="1", checksum=f"checksum: {SHA384}", source="source: https://example.com/m.onnx",
               extra=""):
    lines = [f"  - name: {name}"]
    if size is not None:
        lines.append(f"    size: {size}")
    if checksum is not None:
        lines.append(f"    {checksum}")
    if source is not None:
        lines.append(f"    {source}")
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def model_yml(head=HEAD, files=None, mo=MO_ARGS, extra=""):
    if files is None:
        files = file_entry()
    return head + "files:\n" + files + mo + extra


def stage_yml():
    return model_yml()


COMPOSITE = """\
description: A test composite model
task_type: classification
framework: onnx
license: https://example.com/LICENSE
stages_order:
  - c-encoder
  - c-decoder
"""

M = "{root}/public/m/model.yml: model \"m\": "
C = "{root}/public/c/composite-model.yml: model \"c\": "

# (id, {path in the registry: text}, model to select, the exact message after "Registry error: ")
BROKEN = [
    ("absolute file name",
     {"public/m/model.yml": model_yml(files=file_entry(name="/etc/m.onnx"))}, "m",
     M + "files[0].name: expected a relative path, found the absolute path '/etc/m.onnx'"),
    ("windows absolute file name",
     {"public/m/model.yml": model_yml(files=file_entry(name="'C:/m.onnx'"))}, "m",
     M + "files[0].name: expected a relative path, found the absolute path 'C:/m.onnx'"),
    ("file name with ..",
     {"public/m/model.yml": model_yml(files=file_entry(name="sub/../../m.onnx"))}, "m",
     M + "files[0].name: expected a path inside the model folder, found 'sub/../../m.onnx' (contains '..')"),
    ("duplicate file names",
     {"public/m/model.yml": model_yml(files=file_entry() + file_entry(size="2"))}, "m",
     M + "files[1].name: expected a unique file name, found 'm.onnx' twice"),
    ("file name not a string",
     {"public/m/model.yml": model_yml(files=file_entry(name="[a, b]"))}, "m",
     M + "files[0].name: expected a string, found list ['a', 'b']"),
    ("malformed sha384 (too short)",
     {"public/m/model.yml": model_yml(files=file_entry(checksum="checksum: abc123"))}, "m",
     M + "files[0].checksum: expected a sha384 hash (96 hexadecimal digits), found 'abc123' (6 characters)"),
    ("malformed sha384 (a sha256)",
     {"public/m/model.yml": model_yml(files=file_entry(checksum=f"checksum: {SHA256}"))}, "m",
     M + f"files[0].checksum: expected a sha384 hash (96 hexadecimal digits), found '{SHA256}' (64 characters)"),
    ("malformed sha256 (not hex)",
     {"public/m/model.yml": model_yml(files=file_entry(checksum="sha256: " + "g" * 64))}, "m",
     M + "files[0].sha256: expected a sha256 hash (64 hexadecimal digits), found '" + "g" * 64 + "' (64 characters)"),
    ("malformed sha256 (a sha384)",
     {"public/m/model.yml": model_yml(files=file_entry(checksum=f"sha256: {SHA384}"))}, "m",
     M + f"files[0].sha256: expected a sha256 hash (64 hexadecimal digits), found '{SHA384}' (96 characters)"),
    ("sha256 not a string",
     {"public/m/model.yml": model_yml(files=file_entry(checksum="sha256: 12345"))}, "m",
     M + "files[0].sha256: expected a string, found integer 12345"),
    ("both checksum and sha256",
     {"public/m/model.yml": model_yml(files=file_entry(extra=f"    sha256: {SHA256}"))}, "m",
     M + "files[0]: expected one of 'checksum' or 'sha256', found both"),
    ("{$type: sha384, value} malformed",
     {"public/m/model.yml": model_yml(files=file_entry(checksum="checksum: {$type: sha384, value: 'xyz'}"))}, "m",
     M + "files[0].checksum.value: expected a sha384 hash (96 hexadecimal digits), found 'xyz' (3 characters)"),
    ("{$type: sha384} without value",
     {"public/m/model.yml": model_yml(files=file_entry(checksum="checksum: {$type: sha384}"))}, "m",
     M + "files[0].checksum.value: expected this required key, found no such key"),
    ("unknown checksum $type",
     {"public/m/model.yml": model_yml(files=file_entry(checksum="checksum: {$type: md5, value: abc}"))}, "m",
     M + "files[0].checksum.$type: expected one of sha256, sha384; found 'md5'"),
    ("negative size",
     {"public/m/model.yml": model_yml(files=file_entry(size="-5"))}, "m",
     M + "files[0].size: expected a non-negative integer, found integer -5"),
    ("non-integer size (number)",
     {"public/m/model.yml": model_yml(files=file_entry(size="1.5"))}, "m",
     M + "files[0].size: expected a non-negative integer, found number 1.5"),
    ("non-integer size (string)",
     {"public/m/model.yml": model_yml(files=file_entry(size="'12'"))}, "m",
     M + "files[0].size: expected a non-negative integer, found string '12'"),
    ("non-integer size (boolean)",
     {"public/m/model.yml": model_yml(files=file_entry(size="true"))}, "m",
     M + "files[0].size: expected a non-negative integer, found boolean True"),
    ("unknown source $type",
     {"public/m/model.yml": model_yml(files=file_entry(source="source: {$type: ftp, url: 'ftp://x/m.onnx'}"))}, "m",
     M + "files[0].source.$type: expected one of google_drive, http; found 'ftp'"),
    ("source without $type",
     {"public/m/model.yml": model_yml(files=file_entry(source="source: {url: 'https://x/m.onnx'}"))}, "m",
     M + "files[0].source.$type: expected this required key, found no such key"),
    ("http source without url",
     {"public/m/model.yml": model_yml(files=file_entry(source="source: {$type: http}"))}, "m",
     M + "files[0].source.url: expected this required key, found no such key"),
    ("google_drive source without id",
     {"public/m/model.yml": model_yml(files=file_entry(source="source: {$type: google_drive, url: x}"))}, "m",
     M + "files[0].source.id: expected this required key, found no such key"),
    ("source not a string or mapping",
     {"public/m/model.yml": model_yml(files=file_entry(source="source: 42"))}, "m",
     M + "files[0].source: expected a mapping, found integer 42"),
    ("unknown postprocessing $type",
     {"public/m/model.yml": model_yml(extra="postprocessing:\n  - $type: sed\n    file: m.onnx\n")}, "m",
     M + "postprocessing[0].$type: expected one of regex_replace, unpack_archive; found 'sed'"),
    ("postprocessing file with ..",
     {"public/m/model.yml": model_yml(extra="postprocessing:\n  - $type: unpack_archive\n"
                                            "    file: ../x.zip\n    format: zip\n")}, "m",
     M + "postprocessing[0].file: expected a path inside the model folder, found '../x.zip' (contains '..')"),
    ("regex_replace with a bad pattern",
     {"public/m/model.yml": model_yml(extra="postprocessing:\n  - $type: regex_replace\n    file: m.onnx\n"
                                            "    pattern: 'a('\n    replacement: b\n")}, "m",
     M + "postprocessing[0].pattern: expected a regular expression, found 'a(' "
         "(missing ), unterminated subpattern at position 1)"),
    ("regex_replace without replacement",
     {"public/m/model.yml": model_yml(extra="postprocessing:\n  - $type: regex_replace\n    file: m.onnx\n"
                                            "    pattern: a\n")}, "m",
     M + "postprocessing[0].replacement: expected this required key, found no such key"),
    ("unpack_archive with an unknown format",
     {"public/m/model.yml": model_yml(extra="postprocessing:\n  - $type: unpack_archive\n    file: m.onnx\n"
                                            "    format: rar\n")}, "m",
     M + "postprocessing[0].format: expected one of bztar, gztar, tar, xztar, zip; found 'rar'"),
    ("missing files",
     {"public/m/model.yml": HEAD + MO_ARGS}, "m",
     M + "files: expected this required key, found no such key"),
    ("files not a list",
     {"public/m/model.yml": HEAD + MO_ARGS + "files: m.onnx\n"}, "m",
     M + "files: expected a list, found string 'm.onnx'"),
    ("missing framework",
     {"public/m/model.yml": model_yml(head=HEAD.replace("framework: onnx\n", ""))}, "m",
     M + "framework: expected this required key, found no such key"),
    ("missing description",
     {"public/m/model.yml": model_yml(head=HEAD.replace("description: A test model\n", ""))}, "m",
     M + "description: expected this required key, found no such key"),
    ("missing license",
     {"public/m/model.yml": model_yml(head=HEAD.replace("license: https://example.com/LICENSE\n", ""))}, "m",
     M + "license: expected this required key, found no such key"),
    ("missing task_type",
     {"public/m/model.yml": model_yml(head=HEAD.replace("task_type: classification\n", ""))}, "m",
     M + "task_type: expected this required key, found no such key"),
    ("missing file name",
     {"public/m/model.yml": model_yml(files=f"  - size: 1\n    checksum: {SHA384}\n    source: https://x/m\n")},
     "m",
     M + "files[0].name: expected this required key, found no such key"),
    ("missing file size",
     {"public/m/model.yml": model_yml(files=file_entry(size=None))}, "m",
     M + "files[0].size: expected this required key, found no such key"),
    ("missing file source",
     {"public/m/model.yml": model_yml(files=file_entry(source=None))}, "m",
     M + "files[0].source: expected this required key, found no such key"),
    ("missing checksum",
     {"public/m/model.yml": model_yml(files=file_entry(checksum=None))}, "m",
     M + "files[0]: expected a 'checksum' (sha384) or 'sha256' key, found neither"),
    ("description not a string",
     {"public/m/model.yml": model_yml(head=HEAD.replace("description: A test model", "description: [a]"))}, "m",
     M + "description: expected a string, found list ['a']"),
    ("empty framework",
     {"public/m/model.yml": model_yml(head=HEAD.replace("framework: onnx", "framework: ''"))}, "m",
     M + "framework: expected a framework name (e.g. caffe, caffe2, dldt, kaldi, mxnet, onnx, paddle, pytorch, "
         "tf), found string ''"),
    ("framework with a line break",
     {"public/m/model.yml": model_yml(head=HEAD.replace("framework: onnx", "framework: \"a\\nb\""))}, "m",
     M + "framework: expected a framework name (e.g. caffe, caffe2, dldt, kaldi, mxnet, onnx, paddle, pytorch, "
         "tf), found string 'a\\nb'"),
    ("unknown task_type",
     {"public/m/model.yml": model_yml(head=HEAD.replace("task_type: classification", "task_type: fortune_telling"))},
     "m",
     M + "task_type: expected one of action_recognition, background_matting, classification, colorization, "
         "detection, face_recognition, feature_extraction, head_pose_estimation, human_pose_estimation, "
         "image_inpainting, image_processing, image_translation, instance_segmentation, machine_translation, "
         "monocular_depth_estimation, named_entity_recognition, noise_suppression, object_attributes, "
         "optical_character_recognition, place_recognition, question_answering, salient_object_detection, "
         "semantic_segmentation, sound_classification, speech_recognition, style_transfer, text_prediction, "
         "text_to_speech, time_series, token_recognition; found 'fortune_telling'"),
    ("unknown $variable in model_optimizer_args",
     {"public/m/model.yml": model_yml(mo="model_optimizer_args:\n  - --input=data\n"
                                         "  - --input_model=$download_dir/m.onnx\n")}, "m",
     M + "model_optimizer_args[1]: expected one of the variables $config_dir, $conv_dir, $dl_dir, $mo_dir, "
         "$mo_ext_dir; found $download_dir in '--input_model=$download_dir/m.onnx'"),
    ("unknown ${variable} in model_optimizer_args",
     {"public/m/model.yml": model_yml(mo="model_optimizer_args:\n  - --input_model=${models}/m.onnx\n")}, "m",
     M + "model_optimizer_args[0]: expected one of the variables $config_dir, $conv_dir, $dl_dir, $mo_dir, "
         "$mo_ext_dir; found $models in '--input_model=${models}/m.onnx'"),
    ("stray $ in model_optimizer_args",
     {"public/m/model.yml": model_yml(mo="model_optimizer_args:\n  - '--mean_values=$ [1,2,3]'\n")}, "m",
     M + "model_optimizer_args[0]: expected $name or ${name}, found a stray '$' in '--mean_values=$ [1,2,3]'"),
    ("model_optimizer_args not a list",
     {"public/m/model.yml": model_yml(mo="model_optimizer_args: --input=data\n")}, "m",
     M + "model_optimizer_args: expected a list, found string '--input=data'"),
    ("model_optimizer_args item not a string",
     {"public/m/model.yml": model_yml(mo="model_optimizer_args:\n  - 1\n")}, "m",
     M + "model_optimizer_args[0]: expected a string, found integer 1"),
    ("YAML syntax error",
     {"public/m/model.yml": "files: [\n  - name: m.onnx\n"}, "m",
     M + "expected valid YAML, found a syntax error at line 2, column 3: did not find expected node content "
         "(while parsing a flow node)"),
    ("YAML bad indentation",
     {"public/m/model.yml": "description: a\n framework: onnx\n"}, "m",
     M + "expected valid YAML, found a syntax error at line 2, column 11: "
         "mapping values are not allowed in this context"),
    ("top level a list",
     {"public/m/model.yml": "- files\n- framework\n"}, "m",
     M + "(top level): expected a mapping, found list ['files', 'framework']"),
    ("empty model.yml",
     {"public/m/model.yml": "# nothing here\n"}, "m",
     M + "(top level): expected a mapping, found nothing (null)"),
    ("name key present",
     {"public/m/model.yml": model_yml(extra="name: other-name\n")}, "m",
     M + "name: expected no such key (the model folder's name and place define it), found string 'other-name'"),
    ("subdirectory key present",
     {"public/m/model.yml": model_yml(extra="subdirectory: public/x\n")}, "m",
     M + "subdirectory: expected no such key (the model folder's name and place define it), "
         "found string 'public/x'"),
    ("dldt model missing the bin file",
     {"public/m/model.yml": model_yml(head=HEAD.replace("framework: onnx", "framework: dldt"), mo="",
                                      files=file_entry(name="FP16/m.xml") + file_entry(name="FP32/m.xml")
                                      + file_entry(name="FP32/m.bin"))}, "m",
     M + "files: expected FP16/m.bin for precision FP16, found none"),
    ("dldt model missing the xml file",
     {"public/m/model.yml": model_yml(head=HEAD.replace("framework: onnx", "framework: dldt"), mo="",
                                      files=file_entry(name="FP16-INT8/m.bin"))}, "m",
     M + "files: expected FP16-INT8/m.xml for precision FP16-INT8, found none"),
    ("dldt model with an unknown precision folder",
     {"public/m/model.yml": model_yml(head=HEAD.replace("framework: onnx", "framework: dldt"), mo="",
                                      files=file_entry(name="FP64/m.xml"))}, "m",
     M + "files[0].name: expected a precision folder (FP16, FP16-INT1, FP16-INT8, FP32, FP32-INT1, FP32-INT8), "
         "found 'FP64'"),
    ("non-dldt model without model_optimizer_args",
     {"public/m/model.yml": model_yml(head=HEAD.replace("framework: onnx", "framework: caffe"), mo="")}, "m",
     M + "model_optimizer_args: expected this key for framework 'caffe' (only dldt models are already IR), found none"),
    ("pytorch model without conversion_to_onnx_args",
     {"public/m/model.yml": model_yml(head=HEAD.replace("framework: onnx", "framework: pytorch"))}, "m",
     M + "conversion_to_onnx_args: expected this key for framework 'pytorch' (it is converted to ONNX first), found none"),
    ("conversion_to_onnx_args for a framework that is not converted to ONNX",
     {"public/m/model.yml": model_yml(extra="conversion_to_onnx_args: [--model-name=x]\n")}, "m",
     M + "conversion_to_onnx_args: expected none for framework 'onnx', found some"),
    ("unknown $variable in conversion_to_onnx_args",
     {"public/m/model.yml": model_yml(head=HEAD.replace("framework: onnx", "framework: pytorch"),
                                      extra="conversion_to_onnx_args: ['--weights=$weights_dir/m.pth']\n")}, "m",
     M + "conversion_to_onnx_args[0]: expected one of the variables $config_dir, $conv_dir, $dl_dir, $mo_dir, "
         "$mo_ext_dir; found $weights_dir in '--weights=$weights_dir/m.pth'"),
    ("input_info entry without a name",
     {"public/m/model.yml": model_yml(extra="input_info:\n  - shape: [1, 3]\n    layout: NC\n")}, "m",
     M + "input_info[0].name: expected this required key, found no such key"),
    ("model_info not a mapping",
     {"public/m/model.yml": model_yml(extra="model_info: [1]\n")}, "m",
     M + "model_info: expected a mapping, found list [1]"),
    ("invalid model folder name",
     {"public/m@1/model.yml": model_yml()}, "m@1",
     "{root}/public/m@1/model.yml: model \"m@1\": expected a model folder name of letters, digits "
     "and . _ - only, found 'm@1'"),
    # composite models
    ("composite: stages_order names a missing stage",
     {"public/c/composite-model.yml": COMPOSITE.replace("c-decoder", "c-dekoder"),
      "public/c/c-encoder/model.yml": stage_yml(), "public/c/c-decoder/model.yml": stage_yml()}, "c",
     C + "stages_order[1]: expected a stage folder {root}/public/c/c-dekoder with a model.yml, found none"),
    ("composite: stage folder not prefixed with the composite name",
     {"public/c/composite-model.yml": COMPOSITE,
      "public/c/c-encoder/model.yml": stage_yml(), "public/c/decoder/model.yml": stage_yml()}, "c",
     C + "expected stage folder names starting with 'c-', found 'decoder'"),
    ("composite: model.yml beside composite-model.yml",
     {"public/c/composite-model.yml": COMPOSITE, "public/c/model.yml": stage_yml(),
      "public/c/c-encoder/model.yml": stage_yml(), "public/c/c-decoder/model.yml": stage_yml()}, "c",
     "{root}/public/c/model.yml: model \"c\": expected only composite-model.yml in a composite model folder, "
     "found a model.yml beside it"),
    ("composite: stage model.yml nested too deep",
     {"public/c/composite-model.yml": COMPOSITE, "public/c/c-encoder/model.yml": stage_yml(),
      "public/c/c-decoder/model.yml": stage_yml(), "public/c/c-decoder/extra/model.yml": stage_yml()}, "c",
     "{root}/public/c/c-decoder/extra/model.yml: model \"c\": expected stage model.yml files only in direct "
     "subfolders of the composite model folder, found one deeper"),
    ("composite: no stage folders",
     {"public/c/composite-model.yml": COMPOSITE}, "c",
     C + "expected at least one stage folder c-* holding a model.yml, found none"),
    ("composite: empty stages_order",
     {"public/c/composite-model.yml": COMPOSITE.split("stages_order")[0] + "stages_order: []\n",
      "public/c/c-encoder/model.yml": stage_yml(), "public/c/c-decoder/model.yml": stage_yml()}, "c",
     C + "stages_order: expected a list of stage folder names (c-decoder, c-encoder), found list []"),
    ("composite: stages_order not a list",
     {"public/c/composite-model.yml": COMPOSITE.split("stages_order")[0] + "stages_order: c-encoder\n",
      "public/c/c-encoder/model.yml": stage_yml()}, "c",
     C + "stages_order: expected a list of stage folder names (c-encoder), found string 'c-encoder'"),
    ("composite: top level not a mapping",
     {"public/c/composite-model.yml": "- c-encoder\n", "public/c/c-encoder/model.yml": stage_yml()}, "c",
     C + "(top level): expected a mapping, found list ['c-encoder']"),
    ("composite: YAML syntax error",
     {"public/c/composite-model.yml": "stages_order: [c-encoder\n", "public/c/c-encoder/model.yml": stage_yml()},
     "c",
     C + "expected valid YAML, found a syntax error at line 2, column 1: did not find expected ',' or ']' "
         "(while parsing a flow sequence)"),
    ("composite: missing task_type",
     {"public/c/composite-model.yml": COMPOSITE.replace("task_type: classification\n", ""),
      "public/c/c-encoder/model.yml": stage_yml(), "public/c/c-decoder/model.yml": stage_yml()}, "c",
     C + "task_type: expected this required key, found no such key"),
    ("composite: framework not a string",
     {"public/c/composite-model.yml": COMPOSITE.replace("framework: onnx", "framework: [onnx]"),
      "public/c/c-encoder/model.yml": stage_yml(), "public/c/c-decoder/model.yml": stage_yml()}, "c",
     C + "framework: expected a string, found list ['onnx']"),
    ("composite: a broken stage",
     {"public/c/composite-model.yml": COMPOSITE, "public/c/c-encoder/model.yml": stage_yml(),
      "public/c/c-decoder/model.yml": model_yml(files=file_entry(size="-1"))}, "c",
     "{root}/public/c/c-decoder/model.yml: model \"c-decoder\": files[0].size: "
     "expected a non-negative integer, found integer -1"),
    ("composite: a broken stage selected by its own name",
     {"public/c/composite-model.yml": COMPOSITE, "public/c/c-encoder/model.yml": stage_yml(),
      "public/c/c-decoder/model.yml": model_yml(files=file_entry(name="/abs"))}, "c-encoder",
     "{root}/public/c/c-decoder/model.yml: model \"c-decoder\": files[0].name: "
     "expected a relative path, found the absolute path '/abs'"),
    # registry structure
    ("duplicate model name in one registry",
     {"intel/m/model.yml": model_yml(), "public/m/model.yml": model_yml()}, "m",
     "{root}: model \"m\": expected unique model names in a registry, found the folders "
     "{root}/intel/m and {root}/public/m"),
    ("duplicate model name: a composite and a model",
     {"intel/c/model.yml": model_yml(), "public/c/composite-model.yml": COMPOSITE,
      "public/c/c-encoder/model.yml": stage_yml(), "public/c/c-decoder/model.yml": stage_yml()}, "c",
     "{root}: model \"c\": expected unique model names in a registry, found the folders "
     "{root}/intel/c and {root}/public/c"),
]


def make_registry(root: Path, layout: dict) -> Path:
    return write_registry_files(root, layout)


@pytest.mark.parametrize("layout, name, message", [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_broken_entry_cli(tmp_path, clean_env, layout, name, message):
    root = make_registry(tmp_path / "registry", layout)
    result = subprocess.run([command("omz-info-dumper"), "--name", name, "--registry", str(root)],
                            capture_output=True, text=True, env=clean_env)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == ["Registry error: " + message.replace("{root}", str(root.resolve()))]
    assert result.returncode == 1


@pytest.mark.parametrize("layout, name, message", [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_broken_entry_api(tmp_path, layout, name, message):
    root = make_registry(tmp_path / "registry", layout)
    with pytest.raises(RegistryError) as info:
        registry = Registry([root])
        for model in registry.match(name):
            pass
    assert str(info.value) == message.replace("{root}", str(root.resolve()))


def test_every_message_names_file_model_key_expected_found(tmp_path):
    """What the product says for each broken entry names the file, the model, what was expected
    and what was found."""
    for index, (case_id, layout, name, _) in enumerate(BROKEN):
        root = make_registry(tmp_path / str(index), layout)
        with pytest.raises(RegistryError) as info:
            for _ in Registry([root]).match(name):
                pass
        message = str(info.value)
        assert "expected" in message and "found" in message, case_id
        assert message.startswith(str(root.resolve())), case_id
        assert 'model "' in message, case_id


def test_broken_model_elsewhere_does_not_break_other_selections(tmp_path, clean_env):
    root = make_registry(tmp_path / "registry", {
        "public/good/model.yml": model_yml(),
        "public/bad/model.yml": model_yml(files=file_entry(size="-1")),
    })
    result = subprocess.run([command("omz-info-dumper"), "--name", "good", "--registry", str(root)],
                            capture_output=True, text=True, env=clean_env)
    assert result.returncode == 0, result.stderr
    assert [m["name"] for m in json.loads(result.stdout)] == ["good"]


def test_missing_registry_folder(tmp_path, clean_env):
    missing = tmp_path / "nowhere"
    result = subprocess.run([command("omz-info-dumper"), "--print_all", "--registry", str(missing)],
                            capture_output=True, text=True, env=clean_env)
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"Registry error: {missing.resolve()}: expected a registry folder (holding <group>/<model>/model.yml), "
        "found no such folder"]
    assert result.returncode == 1


# -- valid entries ---------------------------------------------------------------------------------

def dump(root: Path, name: str, env: dict) -> dict:
    result = subprocess.run([command("omz-info-dumper"), "--name", name, "--registry", str(root)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    [info] = json.loads(result.stdout)
    return info


VALID_FILES = {
    "sha256": (file_entry(checksum=f"sha256: {SHA256}"),
               {"name": "m.onnx", "size": 1, "sha256": SHA256, "source": "https://example.com/m.onnx"}),
    "sha256 in upper case": (file_entry(checksum=f"sha256: {SHA256.upper()}"),
                             {"name": "m.onnx", "size": 1, "sha256": SHA256, "source": "https://example.com/m.onnx"}),
    "{$type: sha384, value}": (file_entry(checksum=f"checksum: {{$type: sha384, value: {SHA384}}}"),
                               {"name": "m.onnx", "size": 1, "sha384": SHA384, "source": "https://example.com/m.onnx"}),
    "{$type: sha256, value}": (file_entry(checksum=f"checksum: {{$type: sha256, value: {SHA256}}}"),
                               {"name": "m.onnx", "size": 1, "sha256": SHA256, "source": "https://example.com/m.onnx"}),
    "bare sha384": (file_entry(),
                    {"name": "m.onnx", "size": 1, "sha384": SHA384, "source": "https://example.com/m.onnx"}),
    "URL string source": (file_entry(source="source: http://127.0.0.1:8000/m.onnx"),
                          {"name": "m.onnx", "size": 1, "sha384": SHA384, "source": "http://127.0.0.1:8000/m.onnx"}),
    "{$type: http, url}": (file_entry(source="source: {$type: http, url: 'https://example.com/x/m.onnx'}"),
                           {"name": "m.onnx", "size": 1, "sha384": SHA384, "source": "https://example.com/x/m.onnx"}),
    "{$type: google_drive, id}": (file_entry(source="source: {$type: google_drive, id: 1AbCdEf}"),
                                  {"name": "m.onnx", "size": 1, "sha384": SHA384, "source": "google_drive:1AbCdEf"}),
    "size zero, nested name": (file_entry(name="sub/dir/m.onnx", size="0"),
                               {"name": "sub/dir/m.onnx", "size": 0, "sha384": SHA384,
                                "source": "https://example.com/m.onnx"}),
}


@pytest.mark.parametrize("files, expected", list(VALID_FILES.values()), ids=list(VALID_FILES))
def test_valid_file_entries(tmp_path, clean_env, files, expected):
    root = make_registry(tmp_path / "registry", {"public/m/model.yml": model_yml(files=files)})
    info = dump(root, "m", clean_env)
    assert info["files"] == [expected]
    assert info["framework"] == "onnx"
    assert info["precisions"] == ["FP16", "FP32"]
    assert info["subdirectory"] == "public/m"


def test_valid_postprocessing_of_both_kinds(tmp_path, clean_env):
    extra = ("postprocessing:\n"
             "  - $type: unpack_archive\n    file: m.zip\n    format: zip\n"
             "  - $type: regex_replace\n    file: sub/code.py\n    pattern: 'np\\.float\\b'\n"
             "    replacement: float\n    count: 2\n"
             "  - $type: regex_replace\n    file: sub/code.py\n    pattern: 'a'\n    replacement: b\n")
    root = make_registry(tmp_path / "registry", {"public/m/model.yml": model_yml(extra=extra)})
    dump(root, "m", clean_env)
    model = Registry([root]).load("m")
    unpack, first, second = model.postprocessing
    assert isinstance(unpack, UnpackArchive)
    assert (str(unpack.file), unpack.format) == ("m.zip", "zip")
    assert isinstance(first, RegexReplace)
    assert (str(first.file), first.pattern.pattern, first.replacement, first.count) == (
        "sub/code.py", r"np\.float\b", "float", 2)
    assert second.count == 0  # default: replace every occurrence


def test_unknown_keys_are_ignored(tmp_path, clean_env):
    files = file_entry(source="source: {$type: http, url: 'https://example.com/m.onnx', mirror: x}",
                       extra="    comment: ignored too")
    extra = "quantizable: yes\nfuture_key: {a: 1}\ninput_info:\n  - name: data\n    shape: [1, 3]\n" \
            "    layout: NC\n    note: ignored\n"
    root = make_registry(tmp_path / "registry", {"public/m/model.yml": model_yml(files=files, extra=extra)})
    info = dump(root, "m", clean_env)
    assert info["input_info"] == [{"name": "data", "shape": [1, 3], "layout": "NC"}]
    assert "future_key" not in info
    assert info["files"][0]["source"] == "https://example.com/m.onnx"


def test_valid_template_variables(tmp_path, clean_env):
    mo = ("model_optimizer_args:\n  - --input_model=$dl_dir/m.onnx\n  - --extension=${mo_ext_dir}/x.py\n"
          "  - --transformations_config=$config_dir/t.json\n  - --output_dir=$conv_dir\n"
          "  - --mo=$mo_dir/mo.py\n  - '--scale=$$5'\n")
    root = make_registry(tmp_path / "registry", {"public/m/model.yml": model_yml(mo=mo)})
    dump(root, "m", clean_env)
    assert Registry([root]).load("m").mo_args[-1] == "--scale=$$5"


def test_valid_dldt_and_pytorch_models(tmp_path, clean_env):
    dldt = model_yml(head=HEAD.replace("framework: onnx", "framework: dldt"), mo="",
                     files=file_entry(name="FP16/d.xml") + file_entry(name="FP16/d.bin")
                     + file_entry(name="FP16-INT8/d.xml") + file_entry(name="FP16-INT8/d.bin"))
    pytorch = model_yml(head=HEAD.replace("framework: onnx", "framework: pytorch"),
                        extra="conversion_to_onnx_args: ['--weights=$dl_dir/p.pth', '--output-file=$conv_dir/p.onnx']\n")
    root = make_registry(tmp_path / "registry", {"intel/d/model.yml": dldt, "public/p/model.yml": pytorch})
    assert dump(root, "d", clean_env)["precisions"] == ["FP16", "FP16-INT8"]
    info = dump(root, "p", clean_env)
    assert (info["framework"], info["precisions"]) == ("pytorch", ["FP16", "FP32"])
    assert Registry([root]).load("p").converter_to_onnx == "pytorch_to_onnx.py"


def test_valid_composite(tmp_path, clean_env):
    root = make_registry(tmp_path / "registry", {
        "public/c/composite-model.yml": COMPOSITE,
        "public/c/c-encoder/model.yml": stage_yml(),
        "public/c/c-decoder/model.yml": stage_yml(),
        "public/c/c-unused/model.yml": stage_yml(),  # not in stages_order: ignored, as openvino-dev does
    })
    info = dump(root, "c", clean_env)
    assert info["composite_model_name"] == "c"
    assert info["model_config"] is None
    assert [(s["name"], s["composite_model_name"], s["subdirectory"]) for s in info["model_stages"]] == [
        ("c-encoder", "c", "public/c/c-encoder"), ("c-decoder", "c", "public/c/c-decoder")]
    assert info["precisions"] == ["FP16", "FP32"]
