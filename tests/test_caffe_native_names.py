"""Tensor names and output order of the native Caffe front end against Model Optimizer 2024.6's IR.

One net covers the cases where MO gives a tensor other names than the requested one: an in-place
conv + BatchNorm + Scale + ReLU chain, a conv + BatchNorm + Scale chain with its own tops (folded:
their tops vanish), a Dropout and a one-input Concat (identities: their tops join their bottom's
names), and an in-place last layer (its blob is read, by itself: MO names it ``{layer, layer:0}``).
It is converted natively and by MO (one run without --output, one with several) and every input's
and output's names compared as sets, in order. The ``native`` tests check the same expectations from
the prototxt with a rule written here (Split included: MO 2024.6 has no Caffe Split extractor).
"""

from __future__ import annotations

import pytest

from helpers_caffe import write_caffemodel
from omz_tools.convert import caffe
from test_caffe_native_layers import run_mo

ov = pytest.importorskip("openvino")

IDENTITY = ("Dropout", "Split")
AFFINE = ("BatchNorm", "Scale")


def _layer(name, kind, bottoms, tops, params=""):
    b = "".join(f' bottom: "{x}"' for x in bottoms)
    t = "".join(f' top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{kind}"{b}{t} {params} }}\n'


def _conv(name, bottom, top):
    return _layer(name, "Convolution", [bottom], [top], "convolution_param { num_output: 4 kernel_size: 3 pad: 1 }")


LAYERS = [  # (name, type, bottoms, tops)
    ("conv1", "Convolution", ["data"], ["conv1"]), ("bn1", "BatchNorm", ["conv1"], ["conv1"]),
    ("sc1", "Scale", ["conv1"], ["conv1"]), ("relu1", "ReLU", ["conv1"], ["conv1"]),
    ("conv2", "Convolution", ["conv1"], ["c2out"]), ("bn2", "BatchNorm", ["c2out"], ["bn2out"]),
    ("sc2", "Scale", ["bn2out"], ["sc2out"]), ("drop", "Dropout", ["sc2out"], ["dropout"]),
    ("cat1", "Concat", ["dropout"], ["cat1out"]), ("relu2", "ReLU", ["dropout"], ["relu2out"]),
    ("sig", "Sigmoid", ["relu2out"], ["relu2out"]),
    ("inp2", "Input", [], ["extra"]), ("rx", "ReLU", ["extra"], ["rxout"]),  # MO orders it after cat1out
]
SPLIT = LAYERS[:8] + [("split", "Split", ["dropout"], ["s1", "s2"]), ("cat1", "Concat", ["s1"], ["cat1out"]),
                      ("relu2", "ReLU", ["s2"], ["relu2out"])] + LAYERS[-3:]


def _prototxt(layers) -> str:
    text = 'name: "names"\ninput: "data"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
    for name, kind, bottoms, tops in layers:
        if kind == "Input":
            text += _layer(name, kind, [], tops, "input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } }")
        elif kind == "Convolution":
            text += _conv(name, bottoms[0], tops[0])
        else:
            text += _layer(name, kind, bottoms, tops, "scale_param { bias_term: true }" if kind == "Scale" else "")
    return text


def _args(tmp_path, layers, *extra) -> list:
    proto = tmp_path / "names.prototxt"
    proto.write_text(_prototxt(layers), encoding="utf-8")
    model = write_caffemodel(proto, tmp_path / "names.caffemodel")
    return [f"--input_model={model}", f"--input_proto={proto}", *extra]


def _names(ports) -> list:
    return [set(port.get_names()) for port in ports]


def _all_names(model) -> set:
    return {name for op in model.get_ops() if op.get_type_name() != "Result"
            for out in op.outputs() for name in out.get_names()}


# -- the rule, from the prototxt alone ---------------------------------------------------------------

def _expected(layers, outputs=()) -> list:
    """Output name sets in MO's order. A tensor per top of a non-identity layer; an affine layer
    after a convolution writes the convolution's tensor and the blobs on it so far lose their names;
    a blob's name goes to the tensor its last reader reads (its last write if nothing reads it)."""
    current, tensor_of, writer, dead, last = {"data": ("data", 0)}, {("data", 0): "data"}, {}, set(), {}
    read, written, first_top, made_by = set(), [], {}, {}
    for name, kind, bottoms, tops in layers:
        ins = [current[b] for b in bottoms]
        read.update(ins)
        last.update({b: tensor_of[v] for b, v in zip(bottoms, ins)})
        for i, top in enumerate(tops):
            version = (top, len(written))
            if kind in IDENTITY or (kind == "Concat" and len(bottoms) == 1):
                tensor = tensor_of[ins[0]]
            elif kind in AFFINE and writer.get(tensor_of[ins[0]]) in ("Convolution",) + AFFINE and not outputs:
                tensor = tensor_of[ins[0]]
                dead.update(b for b, t in last.items() if t == tensor)
            else:
                tensor = f"{name}:{i}"
            writer[tensor] = kind
            current[top], tensor_of[version] = version, tensor
            first_top.setdefault(name, tensor)
            made_by[version] = name
            written.append(version)
    names = {}
    for blob in current:
        if blob not in dead or current[blob] not in read:
            names.setdefault(last.get(blob) if current[blob] in read or blob in last else tensor_of[current[blob]],
                             set()).add(blob)
    if outputs:  # a layer: its first top, and its name added (it is no blob's name here)
        return [names.get(first_top[o], set()) | {o} for o in outputs]
    finals = {}  # MO sorts default outputs by "<layer>_<blob>" of the top (unnamed: "<layer>_<layer>:<port>")
    for version in written:
        tensor = tensor_of[version]
        if version not in read:
            layer = made_by[version]
            got = names.get(tensor) or {layer, f"{layer}:{tensor.split(':')[1]}"}
            finals[f"{layer}_{version[0]}" if names.get(tensor) else f"{layer}_{layer}:{tensor.split(':')[1]}"] = got
    return [finals[key] for key in sorted(finals)]


# -- tests ---------------------------------------------------------------------------------------------

@pytest.mark.native
@pytest.mark.parametrize("layers", [LAYERS, SPLIT], ids=["dropout", "split"])
def test_default_output_names_follow_the_rule(tmp_path, layers):
    model = caffe.convert(_args(tmp_path, layers))
    want = _expected(layers)
    identity = {"cat1out", "dropout", "sc2out"} | ({"s1", "s2"} if layers is SPLIT else set())
    assert _names(model.outputs) == want == [identity, {"rxout"}, {"sig", "sig:0"}]
    assert _names(model.inputs) == [{"data"}, {"extra"}]
    relu2 = next(op for op in model.get_ops() if op.get_friendly_name() == "relu2")
    assert relu2.output(0).get_names() == {"relu2out"}  # its blob's last reader (sig) reads it


@pytest.mark.native
def test_requested_output_names_follow_the_rule(tmp_path):
    model = caffe.convert(_args(tmp_path, LAYERS, "--output=relu2,cat1,sig,conv1"))
    assert _names(model.outputs) == _expected(LAYERS, ["relu2", "cat1", "sig", "conv1"]) == \
        [{"relu2", "relu2out"}, {"cat1", "cat1out", "dropout", "sc2out"}, {"sig"}, {"conv1"}]
    assert _names(model.inputs) == [{"data"}]  # extra feeds none of them: MO leaves it out



@pytest.mark.native
def test_an_output_without_a_name_gets_its_layer_name_and_port(tmp_path):
    # sig's top is read (by sig itself): nothing names its tensor, so it is named as MO names such outputs
    model = caffe.convert(_args(tmp_path, LAYERS, "--output=sig:0"))
    assert _names(model.outputs) == [{"sig", "sig:0"}]
    assert model.outputs[0].get_node().get_friendly_name() == "sig/sink_port_0"


def test_default_outputs_named_and_ordered_as_model_optimizer(tmp_path):
    args = _args(tmp_path, LAYERS)
    native = caffe.convert(args)
    mo_model = ov.Core().read_model(str(run_mo(tmp_path, args, tmp_path / "cache")))
    assert _names(native.outputs) == _names(mo_model.outputs), (_names(native.outputs), _names(mo_model.outputs))
    assert _names(native.inputs) == _names(mo_model.inputs)
    assert _all_names(native) == _all_names(mo_model)


def test_requested_outputs_named_and_ordered_as_model_optimizer(tmp_path):
    # bn2 is folded and relu2:0 has a port: MO finds neither among its outputs' names, so they come first;
    # conv1 (a layer and an in-place blob) is the convolution's own top, named as bn1 reads it
    args = _args(tmp_path, LAYERS, "--output=sig,cat1,bn2,relu2:0,conv1")
    native = caffe.convert(args)
    mo_model = ov.Core().read_model(str(run_mo(tmp_path, args, tmp_path / "cache")))
    assert _names(native.outputs) == _names(mo_model.outputs), (_names(native.outputs), _names(mo_model.outputs))
    assert _names(native.outputs)[:2] == [{"bn2out"}, {"relu2out"}]  # a port form adds no name
    assert _names(native.outputs)[-1] == {"conv1"}
    assert _names(native.inputs) == _names(mo_model.inputs)
