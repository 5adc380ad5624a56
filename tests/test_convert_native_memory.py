"""The native backend's model (its weights: the caffemodel's size, 198 MB for se-resnet-101) is freed
once its precisions are saved, before the checks compile each saved IR: otherwise both are in memory
at the conversion's peak (the benchmark measured 1,008 MB against 523 MB for se-resnet-101)."""

from __future__ import annotations

import weakref

import pytest

from helpers_caffe import (SMALL_CLASSES, SMALL_INPUT_SHAPE, conv_fc_gflops, file_digest, small_se_resnet_prototxt,
                           write_caffemodel, write_model_yml)

pytest.importorskip("openvino")


@pytest.mark.native
def test_native_model_is_freed_before_the_checks(tmp_path, monkeypatch):
    from omz_tools.convert import backends, engine, ircheck
    from omz_tools.convert.outcome import Options
    from omz_tools.registry import Registry
    name = "memory-net"
    folder = tmp_path / "dl" / "public" / name
    folder.mkdir(parents=True)
    text = small_se_resnet_prototxt()
    (folder / f"{name}.prototxt").write_text(text)
    write_caffemodel(folder / f"{name}.prototxt", folder / f"{name}.caffemodel", tmp_path / "cache", seed=4)
    files = [(f"{name}.{suffix}", *file_digest(folder / f"{name}.{suffix}"), f"http://127.0.0.1:9/{name}.{suffix}")
             for suffix in ("prototxt", "caffemodel")]
    write_model_yml(tmp_path / "registry", name, files, input_shape=SMALL_INPUT_SHAPE,
                    outputs={"prob": [1, SMALL_CLASSES]}, mean=True,
                    card_extra=f"  mparams: 0.006\n  gflops: {conv_fc_gflops(text, tmp_path / 'cache'):.6f}\n")
    made, alive_at_check = [], []
    run_native, check_ir = backends.run_native, ircheck.check_ir

    def recording_run_native(*args, **kwargs):
        model, extra = run_native(*args, **kwargs)
        made.append(weakref.ref(model))
        return model, extra

    def recording_check_ir(*args, **kwargs):
        alive_at_check.append(made[-1]() is not None)
        return check_ir(*args, **kwargs)

    monkeypatch.setattr(backends, "run_native", recording_run_native)
    monkeypatch.setattr(ircheck, "check_ir", recording_check_ir)
    model = Registry.from_options([tmp_path / "registry"]).load(name)
    converter = engine.Converter(Options(download_dir=tmp_path / "dl", output_dir=tmp_path / "out", backend="native"))
    outcome = converter.convert(model)
    assert outcome.ok, outcome
    assert alive_at_check == [False, False]  # FP32's check, FP16's check


@pytest.mark.native
@pytest.mark.parametrize("layer", [
    'type: "InnerProduct" inner_product_param { num_output: 2048 }',
    'type: "Convolution" convolution_param { num_output: 512 kernel_size: 1 }',
])
def test_building_copies_no_weights_in_numpy(tmp_path, layer):
    """A layer's float32 weights go into its Constant as read: VGG-19's fc6 (392 MiB) was copied once
    more in numpy first, and that copy was the conversion's peak (1,426 MiB, 2.60x the caffemodel).
    tracemalloc sees numpy's buffers (not OpenVINO's), so any copy of the weights shows."""
    import tracemalloc

    from omz_tools.convert.caffe import mo_args
    from omz_tools.convert.caffe.build import build
    from omz_tools.convert.caffe.reader import read_net
    prototxt, caffemodel = tmp_path / "wide.prototxt", tmp_path / "wide.caffemodel"
    prototxt.write_text('name: "wide"\ninput: "data"\ninput_dim: 1\ninput_dim: 2048\ninput_dim: 1\ninput_dim: 1\n'
                        f'layer {{ name: "wide" {layer} bottom: "data" top: "wide" }}\n')
    write_caffemodel(prototxt, caffemodel, seed=1)
    net = read_net(prototxt, caffemodel)
    weights = net.layers[-1].blobs[0].nbytes
    assert weights >= 4 << 20  # 2048 x 2048 or 512 x 2048 float32
    tracemalloc.start()
    try:
        model = build(net, mo_args.parse([f"--input_model={caffemodel}", f"--input_proto={prototxt}"]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    sizes = [op.get_byte_size() for op in model.get_ops() if op.get_type_name() == "Constant"]
    assert weights in sizes  # the weights are in the model, as float32
    assert peak < weights // 4, f"numpy held {peak} bytes while building, the weights are {weights} bytes"
