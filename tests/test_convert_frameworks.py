"""The ovc backend (openvino.convert_model with Model Optimizer's arguments) against Model Optimizer.

Each model is generated here (onnx helpers, TensorFlow, torch), registered with MO arguments as
Open Model Zoo writes them, converted by both backends through the command line, and compared:
same input names/shapes/layouts, same output names, outputs within 1e-5, softmax not saturated.
Model Optimizer runs in the [mo] venv ($OMZ_TEST_MO_PYTHON, set by .ci/run); the framework
packages live in another venv (.ci/run's frameworks step), so these tests skip where either is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers_caffe import assert_not_saturated
from helpers_frameworks import MEAN, STD, compare, convert, image, mo_python, register, write_onnx

pytestmark = pytest.mark.frameworks


@pytest.fixture
def dirs(tmp_path):
    return tmp_path / "registry", tmp_path / "dl", tmp_path / "out"


def _both(name, dirs):
    registry, dl, out = dirs
    mo = mo_python()
    ovc_xml = convert(name, registry, dl, out / "ovc", "ovc")
    mo_xml = convert(name, registry, dl, out / "mo", "mo", python=mo)
    return ovc_xml, mo_xml


def test_onnx_preprocessing_as_model_optimizer(dirs):
    """input_info (name, shape, layout), reverse channels, mean and scale values, --output."""
    registry, dl, _ = dirs
    onnx_file = write_onnx(dl / "public" / "cls-onnx" / "cls.onnx")
    register(registry, dl, "cls-onnx", "onnx", [onnx_file],
             [f"--mean_values=data[{','.join(map(str, MEAN))}]", f"--scale_values=data[{','.join(map(str, STD))}]",
              "--reverse_input_channels", "--output=prob", "--input_model=$dl_dir/cls.onnx"],
             input_info=[{"name": "data", "shape": [1, 3, 16, 16], "layout": "NCHW"}], outputs={"prob": [1, 5]})
    ovc_xml, mo_xml = _both("cls-onnx", dirs)
    out = compare(ovc_xml, mo_xml, {"data": image([1, 3, 16, 16])})
    assert set(out) == {"prob"}


def test_onnx_cut_at_inner_output_guessed_layout_and_scale(dirs):
    """--output at an inner tensor; 3 mean values with no layout (MO guesses the channel axis); --scale."""
    registry, dl, _ = dirs
    onnx_file = write_onnx(dl / "public" / "cut-onnx" / "cls.onnx", seed=3)
    register(registry, dl, "cut-onnx", "onnx", [onnx_file],
             ["--input_model=$dl_dir/cls.onnx", "--output=feat", f"--mean_values=[{','.join(map(str, MEAN))}]",
              "--scale=58", "--reverse_input_channels"])
    ovc_xml, mo_xml = _both("cut-onnx", dirs)
    out = compare(ovc_xml, mo_xml, {"data": image([1, 3, 16, 16], seed=2)})
    assert set(out) == {"feat"} and out["feat"].shape == (1, 8)
    assert np.count_nonzero(out["feat"]) > 2 and out["feat"].std() > 1e-3  # ReLU features, not all zero


def test_onnx_input_shape_reshapes(dirs):
    """--input with a shape (a larger image than the file declares)."""
    registry, dl, _ = dirs
    onnx_file = write_onnx(dl / "public" / "big-onnx" / "cls.onnx", seed=4)
    register(registry, dl, "big-onnx", "onnx", [onnx_file],
             ["--input=data[1,3,32,32]", "--input_model=$dl_dir/cls.onnx", "--scale_values=[58,57,57]",
              "--mean_values=[120,115,100]",
              "--layout=nchw"])
    ovc_xml, mo_xml = _both("big-onnx", dirs)
    compare(ovc_xml, mo_xml, {"data": image([1, 3, 32, 32], seed=5)})


def _tf_args(*source):
    return [*source, f"--mean_values=input[{','.join(map(str, MEAN))}]", "--scale_values=input[58.0]",
            "--reverse_input_channels"]


TF_INPUT = [{"name": "input", "shape": [1, 16, 16, 3], "layout": "NHWC"}]


def _tf_model(kind, dirs, seed):
    """Register a TensorFlow classifier of ``kind`` as Open Model Zoo's model.yml files do: its name."""
    from helpers_frameworks import write_checkpoint, write_frozen_graph, write_saved_model
    registry, dl, _ = dirs
    name = f"cls-tf-{kind}"
    folder = dl / "public" / name
    if kind == "frozen":
        files, source = [write_frozen_graph(folder, seed)], ["--input_model=$dl_dir/graph.pb", "--output=prob"]
    elif kind == "text":  # a text GraphDef under a name OpenVINO's front end does not take for text
        files, source = [write_frozen_graph(folder, seed, "graph.txt")], ["--input_model=$dl_dir/graph.txt",
                                                                         "--input_model_is_text", "--output=prob"]
    elif kind == "saved":
        files, source = [write_saved_model(folder / "saved", seed)], ["--saved_model_dir=$dl_dir/saved"]
    elif kind == "meta":  # as efficientnet-b0 and mixnet-l: the meta graph beside its checkpoint
        files, source = write_checkpoint(folder, seed), ["--input_meta_graph=$dl_dir/model.ckpt.meta", "--output=prob"]
    else:  # a text graph with its variables and the checkpoint file that holds them
        files, source = write_checkpoint(folder, seed, v1=True), ["--input_model=$dl_dir/graph.pbtxt", "--input_model_is_text",
                                                         "--input_checkpoint=$dl_dir/model.ckpt", "--output=prob"]
    # MO's legacy front end (the one that reads such a checkpoint) fails on a --layout: none given
    info = TF_INPUT if kind != "checkpoint" else [{"name": "input", "shape": [1, 16, 16, 3]}]
    register(registry, dl, name, "tf", files, _tf_args(*source), input_info=info)
    return name


def _tf_reference(x, seed):
    """TensorFlow itself on the input preprocessed as MO's arguments say (channels reversed, mean
    subtracted, divided by the scale)."""
    from helpers_frameworks import tf_classifier
    _, _, classify = tf_classifier(seed)
    want = classify((x[..., ::-1] - np.array(MEAN, np.float32)) / np.float32(58.0)).numpy()
    assert_not_saturated(want)
    return want


def _check_against_tensorflow(xml, seed, layout="[N,H,W,C]"):
    from helpers_frameworks import run_ir
    x = image([1, 16, 16, 3], seed=seed + 1)
    ports, got = run_ir(xml, {0: x})
    assert list(ports.values()) == [([1, 16, 16, 3], layout)]
    assert {"input", "input:0"} & set(next(iter(ports)).split(",") + [next(iter(ports))])
    (value,) = got.values()
    np.testing.assert_allclose(value, _tf_reference(x, seed), rtol=0, atol=1e-5)


TF_KINDS = {"frozen": 6, "text": 7, "saved": 8, "meta": 9}


@pytest.mark.parametrize("kind", TF_KINDS)
def test_tensorflow_against_tensorflow(kind, dirs):
    """A frozen graph, a text graph (--input_model_is_text), a SavedModel and a meta graph with its
    checkpoint: ovc's IR against TensorFlow itself."""
    registry, dl, out = dirs
    name = _tf_model(kind, dirs, TF_KINDS[kind])
    _check_against_tensorflow(convert(name, registry, dl, out / "ovc", "ovc"), TF_KINDS[kind])


@pytest.mark.parametrize("kind", TF_KINDS)
def test_tensorflow_against_model_optimizer(kind, dirs):
    """The same models: ovc's IR against Model Optimizer 2024.6's, run in a venv with TensorFlow
    ($OMZ_TEST_MO_TF_PYTHON): same input name, shape and layout, same output names, within 1e-5."""
    from helpers_frameworks import mo_tf_python
    mo = mo_tf_python()
    registry, dl, out = dirs
    name = _tf_model(kind, dirs, TF_KINDS[kind])
    mo_xml = convert(name, registry, dl, out / "mo", "mo", python=mo)
    ovc_xml = convert(name, registry, dl, out / "ovc", "ovc")
    x = image([1, 16, 16, 3], seed=TF_KINDS[kind] + 1)
    got = compare(ovc_xml, mo_xml, {0: x})
    np.testing.assert_allclose(next(iter(got.values())), _tf_reference(x, TF_KINDS[kind]), rtol=0, atol=1e-5)


def test_tensorflow_checkpoint(dirs):
    """--input_model (text, with variables) + --input_checkpoint: OpenVINO's TensorFlow front end (of
    convert_model 2026 and of MO 2024.6 alike) reads no variables from such a checkpoint, so ovc fails
    in one message that says what to use instead; Model Optimizer's legacy front end converts it, and
    its IR matches TensorFlow."""
    from helpers_frameworks import mo_tf_python, run_converter
    registry, dl, out = dirs
    name = _tf_model("checkpoint", dirs, 10)
    proc = run_converter(name, registry, dl, out / "ovc", "ovc")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "Traceback" not in text and "--input_checkpoint" in text and "--input_meta_graph" in text, text
    assert "--backend mo" in text, text
    assert "--use_legacy_frontend" in text, text
    mo_xml = convert(name, registry, dl, out / "mo", "mo", python=mo_tf_python(), extra=("--add_mo_arg",
                                                                                        "--use_legacy_frontend"))
    _check_against_tensorflow(mo_xml, 10, layout="[...]")


def test_paddle_against_paddle_and_model_optimizer(dirs):
    """A paddle.jit.save model with MO's preprocessing arguments: ovc's IR against Paddle itself on the
    preprocessed input, and against Model Optimizer's (which reads Paddle without paddle installed)."""
    import importlib.util
    if importlib.util.find_spec("paddle") is None:
        pytest.skip("paddlepaddle generates the Paddle test model (pip install paddlepaddle; .ci/run's "
                    "frameworks venv has it)")
    from helpers_frameworks import write_paddle
    registry, dl, out = dirs
    x = image([1, 3, 16, 16], seed=13)
    folder = dl / "public" / "cls-paddle"
    mean, std = np.array(MEAN, np.float32).reshape(1, 3, 1, 1), np.array(STD, np.float32).reshape(1, 3, 1, 1)
    want = write_paddle(folder, (x[:, ::-1] - mean) / std, seed=12)
    assert_not_saturated(want)
    register(registry, dl, "cls-paddle", "paddle", [folder / "model.pdmodel", folder / "model.pdiparams"],
             ["--input_model=$dl_dir/model.pdmodel", f"--mean_values=data[{','.join(map(str, MEAN))}]",
              f"--scale_values=data[{','.join(map(str, STD))}]", "--reverse_input_channels"],
             input_info=[{"name": "data", "shape": [1, 3, 16, 16], "layout": "NCHW"}])
    ovc_xml = convert("cls-paddle", registry, dl, out / "ovc", "ovc")
    from helpers_frameworks import run_ir
    _, got = run_ir(ovc_xml, {"data": x})
    (value,) = got.values()
    np.testing.assert_allclose(value, want, rtol=0, atol=1e-5)
    compare(ovc_xml, convert("cls-paddle", registry, dl, out / "mo", "mo", python=mo_python()), {"data": x})


NET_PY = '''
import torch


class Net(torch.nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, classes)

    def forward(self, x):
        return torch.softmax(self.fc(torch.relu(self.conv(x)).mean((2, 3))), 1)
'''


def test_pytorch_as_open_model_zoo_lays_it_out(dirs):
    """A module file and a state dict in the download folder, conversion_to_onnx_args as Open Model Zoo
    writes them: ovc's IR against torch itself, and against Model Optimizer on the exported ONNX file."""
    import shutil
    import sys

    torch = pytest.importorskip("torch", reason="torch exports the PyTorch test model")
    from helpers_frameworks import weights
    registry, dl, out = dirs
    folder = dl / "public" / "cls-pt"
    folder.mkdir(parents=True)
    (folder / "tinynet.py").write_text(NET_PY)
    w = weights(10)
    state = {"conv.weight": w["conv_w"], "conv.bias": w["conv_b"], "fc.weight": w["fc_w"], "fc.bias": w["fc_b"]}
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, folder / "tinynet.pth")
    mo_args = [f"--mean_values=data[{','.join(map(str, MEAN))}]", f"--scale_values=data[{','.join(map(str, STD))}]",
               "--reverse_input_channels", "--output=prob"]
    register(registry, dl, "cls-pt", "pytorch", [folder / "tinynet.py", folder / "tinynet.pth"],
             [*mo_args, "--input_model=$conv_dir/tinynet.onnx"],
             onnx_args=["--model-path=$dl_dir", "--model-name=Net", "--import-module=tinynet", "--model-param=classes=5",
                        "--weights=$dl_dir/tinynet.pth", "--input-shape=1,3,16,16", "--input-names=data",
                        "--output-names=prob", "--output-file=$conv_dir/tinynet.onnx"],
             input_info=[{"name": "data", "shape": [1, 3, 16, 16], "layout": "NCHW"}], outputs={"prob": [1, 5]})
    ovc_xml = convert("cls-pt", registry, dl, out / "ovc", "auto")  # auto: PyTorch models take ovc
    x = image([1, 3, 16, 16], seed=11)
    sys.path.insert(0, str(folder))
    try:
        import tinynet
        net = tinynet.Net(classes=5)
    finally:
        sys.path.remove(str(folder))
    net.load_state_dict(torch.load(folder / "tinynet.pth"))
    with torch.no_grad():
        want = net(((torch.from_numpy(x[:, ::-1].copy()) - torch.tensor(MEAN).view(1, 3, 1, 1))
                    / torch.tensor(STD).view(1, 3, 1, 1))).numpy()
    assert_not_saturated(want)
    from helpers_frameworks import run_ir
    _, got = run_ir(ovc_xml, {"data": x})
    np.testing.assert_allclose(got["prob"], want, rtol=0, atol=1e-5)
    # Model Optimizer on the ONNX file the export wrote (what omz_converter runs after pytorch_to_onnx.py)
    exported = dl / "public" / "pt-onnx" / "tinynet.onnx"
    exported.parent.mkdir(parents=True)
    shutil.copyfile(out / "ovc" / "public" / "cls-pt" / "tinynet.onnx", exported)
    register(registry, dl, "pt-onnx", "onnx", [exported], [*mo_args, "--input_model=$dl_dir/tinynet.onnx"],
             input_info=[{"name": "data", "shape": [1, 3, 16, 16], "layout": "NCHW"}])
    mo_xml = convert("pt-onnx", registry, dl, out / "mo", "mo", python=mo_python())
    compare(ovc_xml, mo_xml, {"data": x})
