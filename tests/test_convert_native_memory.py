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
