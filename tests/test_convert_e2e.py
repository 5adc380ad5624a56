"""End to end on a small SE-ResNet (the layer types of SE-ResNet-101, converted in seconds):
files served over loopback HTTP, fetched by omz-downloader through a test registry, converted by
omz-converter with the real Model Optimizer, and the IR checked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import command, remount, restore_sigint
from helpers_caffe import (
    SMALL_CLASSES, SMALL_INPUT_SHAPE, conv_fc_gflops, file_digest, small_se_resnet_prototxt, write_caffemodel,
    write_model_yml,
)

NAME = "small-se-resnet"
MEAN = np.array([104.0, 117.0, 123.0], dtype=np.float32)


def _env(base_env: dict, cache: Path) -> dict:
    env = dict(base_env)
    env["XDG_CACHE_HOME"] = str(cache)  # the caffe_pb2 module cache stays inside the test's folder
    return env


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMZ_REGISTRY", "OMZ_MIRROR", "OMZ_OFFLINE")}
    env["CI"] = "true"
    return env


def converter(args, env, cwd=None, **kwargs):
    return subprocess.run([command("omz-converter"), *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, **kwargs)


@pytest.fixture(scope="module")
def small(tmp_path_factory, make_httpserver):
    """Served files, a registry with two entries (with and without --mean_values), downloaded
    with omz-downloader, and converted once to FP32+FP16 with omz-converter."""
    root = tmp_path_factory.mktemp("small")
    cache = root / "cache"
    src = root / "src"
    src.mkdir()
    prototxt_text = small_se_resnet_prototxt()
    (src / f"{NAME}.prototxt").write_text(prototxt_text)
    write_caffemodel(src / f"{NAME}.prototxt", src / f"{NAME}.caffemodel", cache, seed=1)
    server = make_httpserver
    files = []
    for file in (f"{NAME}.prototxt", f"{NAME}.caffemodel"):
        server.expect_request(f"/files/{file}").respond_with_data((src / file).read_bytes(),
                                                                  content_type="application/octet-stream")
        files.append((file, *file_digest(src / file), server.url_for(f"/files/{file}")))
    registry = root / "registry"
    gflops = conv_fc_gflops(prototxt_text, cache)
    card = f"  mparams: 0.006\n  gflops: {gflops:.6f}\n"
    info = "model_info:\n  model_type: classification\n  labels: [a, b]\n"
    write_model_yml(registry, NAME, files, input_shape=SMALL_INPUT_SHAPE, outputs={"prob": [1, SMALL_CLASSES]},
                    card_extra=card, top_extra=info)
    write_model_yml(registry, NAME + "-nomean", files, input_shape=SMALL_INPUT_SHAPE,
                    outputs={"prob": [1, SMALL_CLASSES]}, mean=False, card_extra=card)
    write_model_yml(registry, NAME + "-badcard", files, input_shape=SMALL_INPUT_SHAPE,
                    outputs={"prob": [1, SMALL_CLASSES]}, card_extra="  mparams: 0.5\n")
    env = _env(_clean_env(), cache)
    dl = root / "dl"
    fetched = subprocess.run([command("omz-downloader"), "--name", f"{NAME}*", "--registry", str(registry),
                              "-o", str(dl)], capture_output=True, text=True, env=env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    out = root / "out"
    result = converter(["--name", NAME, "--registry", registry, "-d", dl, "-o", out], env)
    assert result.returncode == 0, result.stdout + result.stderr
    ns = SimpleNamespace(root=root, registry=registry, dl=dl, out=out, env=env, result=result, src=src,
                         conv_dir=out / "public" / NAME, cache=cache, gflops=gflops)
    return ns


def read(xml):
    import openvino as ov
    return ov.Core().read_model(str(xml))


F32 = {"INFERENCE_PRECISION_HINT": "f32"}  # comparisons: this CPU would otherwise run bf16


def infer(xml, x, config=None):
    import openvino as ov
    compiled = ov.Core().compile_model(str(xml), "CPU", config or {})
    return compiled({"data": x})[compiled.output(0)]


def test_ir_written_per_precision_with_record_and_no_leftovers(small):
    for precision in ("FP32", "FP16"):
        folder = small.conv_dir / precision
        assert sorted(p.name for p in folder.iterdir()) == [".omz_converted.json", f"{NAME}.bin", f"{NAME}.xml"]
        record = json.loads((folder / ".omz_converted.json").read_text())
        assert record["key"]["precision"] == precision
        assert {"mo", "openvino", "protobuf", "omz_tools"} <= set(record["key"]["versions"])
        assert any(a.startswith("--input_model=") for a in record["key"]["mo_command"])
        assert [i["name"] for i in record["key"]["inputs"]] == [f"{NAME}.prototxt", f"{NAME}.caffemodel"]
    assert not list(small.conv_dir.glob("*.tmp"))
    out = small.result.stdout
    for phase in ("check", "mo: Model Optimizer, FP32", "fp16: FP32, FP16", "verify", "install"):
        assert f"  {phase}" in out
    assert "--caffe_parser_path=" in (small.conv_dir / f".omz_convert.{NAME}.log").read_text()


def test_ir_matches_registry_and_card(small):
    for precision in ("FP32", "FP16"):
        model = read(small.conv_dir / precision / f"{NAME}.xml")
        assert [(p.get_any_name(), list(p.get_shape())) for p in model.inputs] == [("data", SMALL_INPUT_SHAPE)]
        assert [(p.get_any_name(), list(p.get_shape())) for p in model.outputs] == [("prob", [1, SMALL_CLASSES])]
        x = np.random.default_rng(3).uniform(0, 255, SMALL_INPUT_SHAPE).astype(np.float32)
        prob = infer(small.conv_dir / precision / f"{NAME}.xml", x)
        assert prob.min() >= 0 and abs(prob.sum() - 1) < 1e-3
    figures = json.loads((small.conv_dir / "FP32" / ".omz_converted.json").read_text())["figures"]
    assert round(figures["params"] / 1e6, 3) == 0.006
    assert figures["gflops"] == pytest.approx(small.gflops, rel=1e-3)


def test_model_info_written_into_rt_info(small):
    for precision in ("FP32", "FP16"):
        model = read(small.conv_dir / precision / f"{NAME}.xml")
        assert model.get_rt_info(["model_info", "model_type"]).astype(str) == "classification"
        assert model.get_rt_info(["conversion_parameters", "output_dir"]).astype(str) == \
            str(small.conv_dir / precision)


def _runnable(key_command: list) -> list:
    """The record names the interpreter by identity ("python 3.11.7 in /venv"): this one, here."""
    import sys
    assert key_command[0].startswith("python ") and key_command[0].endswith(f" in {Path(sys.prefix).absolute()}")
    return [sys.executable, *key_command[1:]]


def test_fp16_bin_equals_mo_fp16_output(small, tmp_path):
    record = json.loads((small.conv_dir / "FP32" / ".omz_converted.json").read_text())
    cmd = _runnable([a for a in record["key"]["mo_command"] if not a.startswith(("--output_dir=", "--compress_to_fp16="))])
    from omz_tools.convert.caffe_parser import ensure_parser
    from omz_tools.convert.mo import find_mo
    info = find_mo()
    parser = ensure_parser(info.mo_dir, info.mo_version, small.cache / "omz_tools")
    run = subprocess.run([*cmd, f"--output_dir={tmp_path}", "--compress_to_fp16=True",
                          f"--caffe_parser_path={parser}"], capture_output=True, text=True, env=small.env)
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / f"{NAME}.bin").read_bytes() == (small.conv_dir / "FP16" / f"{NAME}.bin").read_bytes()


def test_fast_parser_gives_the_ir_of_mo_default_parser(small, tmp_path):
    """MO's own (pure-Python protobuf) Caffe path writes the same FP32 weights, byte for byte."""
    record = json.loads((small.conv_dir / "FP32" / ".omz_converted.json").read_text())
    cmd = _runnable([a for a in record["key"]["mo_command"] if not a.startswith("--output_dir=")])
    env = dict(small.env, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")  # MO's old module needs it
    run = subprocess.run([*cmd, f"--output_dir={tmp_path}"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / f"{NAME}.bin").read_bytes() == (small.conv_dir / "FP32" / f"{NAME}.bin").read_bytes()


def test_second_run_is_skipped_json_events(small):
    stamps = {p: (small.conv_dir / p / f"{NAME}.bin").stat().st_mtime_ns for p in ("FP32", "FP16")}
    result = converter(["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", small.out,
                        "--progress_format", "json"], dict(small.env, PYTHONPROFILEIMPORTTIME="1"))
    assert result.returncode == 0, result.stderr
    imported = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert imported and not [m for m in imported if m.split(".")[0] in ("openvino", "numpy")]  # cheap skip path
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["$type"] for e in events] == ["model_conversion_begin", "model_conversion_phase",
                                            "model_conversion_skip", "model_conversion_end", "conversion_summary"]
    assert events[1]["phase"] == "check" and "up to date" in events[2]["reason"]
    assert events[-1]["successful"] == [NAME] and events[-1]["skipped"] == [NAME] and events[-1]["failed"] == []
    assert stamps == {p: (small.conv_dir / p / f"{NAME}.bin").stat().st_mtime_ns for p in ("FP32", "FP16")}


def test_every_entry_point_shares_one_record(small, capsys, monkeypatch):
    """The CLI converted through its shebang's python3; `python -m omz_tools.converter` and the
    API in a process started as `python` are the same interpreter: both find the IR up to date."""
    import sys
    python = Path(sys.executable).parent / "python"
    args = ["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", small.out, "--progress_format", "json"]
    result = subprocess.run([str(python), "-m", "omz_tools.converter", *map(str, args)], capture_output=True,
                            text=True, env=small.env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["skipped"] == [NAME]
    import omz_tools
    monkeypatch.setenv("XDG_CACHE_HOME", str(small.cache))
    monkeypatch.setattr(sys, "executable", str(python))
    capsys.readouterr()
    omz_tools.convert(NAME, download_dir=small.dl, output_dir=small.out, registries=[small.registry], progress="json")
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["skipped"] == [NAME], events


def test_failing_mo_keeps_the_previous_ir_and_shows_the_log(small):
    before = (small.conv_dir / "FP32" / f"{NAME}.bin").read_bytes()
    result = converter(["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", small.out,
                        "--add_mo_arg=--output=no_such_layer"], small.env)
    assert result.returncode == 1
    log = small.conv_dir / f".omz_convert.{NAME}.log"
    assert f"{NAME}: Model Optimizer exited with code" in result.stderr
    assert f"Full log: {log}" in result.stderr and "no_such_layer" in result.stderr
    failed = result.stderr.splitlines()[-2:]
    assert failed[0] == "FAILED:" and failed[1].startswith(f"{NAME}: Model Optimizer exited with code")
    assert "Its last error: [ ERROR ]" in failed[1] and "No node with name no_such_layer" in failed[1]
    assert "Last lines of the log:" in result.stderr  # the tail, shown once, before the FAILED list
    assert "Traceback" not in result.stderr.split("Last lines of the log:")[0]
    assert (small.conv_dir / "FP32" / f"{NAME}.bin").read_bytes() == before
    assert not list(small.conv_dir.glob("*.tmp"))


def test_failing_mo_leaves_no_ir_folder(small, tmp_path):
    result = converter(["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", tmp_path,
                        "--add_mo_arg=--output=no_such_layer"], small.env)
    assert result.returncode == 1 and "FAILED:" in result.stderr
    conv_dir = tmp_path / "public" / NAME
    assert sorted(p.name for p in conv_dir.iterdir() if not p.name.endswith((".log", ".lock"))) == []


def test_card_mismatch_fails_naming_the_figure(small, tmp_path):
    result = converter(["--name", NAME + "-badcard", "--registry", small.registry, "-d", small.dl, "-o", tmp_path,
                        "--precisions", "FP32"], small.env)
    assert result.returncode == 1
    assert "FP32: parameter count is 0.006 M (Constant elements of the IR), expected 0.500 M " \
           "(model_card.mparams)" in result.stderr
    assert "No IR was installed" in result.stderr
    assert not (tmp_path / "public" / (NAME + "-badcard") / "FP32").exists()


def test_parallel_jobs_and_mean_values_baked_in(small, tmp_path):
    """-j 2 converts two models at once; the IR with --mean_values on x equals the one without on x - mean."""
    result = converter(["--name", f"{NAME},{NAME}-nomean", "--registry", small.registry, "-d", small.dl, "-o",
                        tmp_path, "--precisions", "FP32", "-j", "2"], small.env)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (NAME, NAME + "-nomean"):
        assert f".omz_convert.{name}.log" in [p.name for p in (tmp_path / "public" / name).iterdir()]
    # Each model's lines come out together (held back while both convert at once).
    owners = [line.split()[1].rstrip(":") if line.startswith("==========") else line.split()[0].strip("[]")
              for line in result.stdout.splitlines() if line.startswith(("==========", "["))]
    assert sorted(set(owners)) == [NAME, NAME + "-nomean"]
    assert owners == sorted(owners, key=lambda o: owners.index(o))  # contiguous blocks
    x = np.random.default_rng(7).uniform(0, 255, SMALL_INPUT_SHAPE).astype(np.float32)
    with_mean = infer(tmp_path / "public" / NAME / "FP32" / f"{NAME}.xml", x)
    without = infer(tmp_path / "public" / (NAME + "-nomean") / "FP32" / f"{NAME}-nomean.xml",
                    x - MEAN.reshape(1, 3, 1, 1))
    np.testing.assert_allclose(with_mean, without, rtol=1e-4, atol=1e-6)
    assert not np.allclose(with_mean, infer(tmp_path / "public" / (NAME + "-nomean") / "FP32" /
                                            f"{NAME}-nomean.xml", x), rtol=1e-4, atol=1e-6)


def test_force_converts_again(small):
    before = (small.conv_dir / "FP16" / f"{NAME}.bin").stat().st_mtime_ns
    result = converter(["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", small.out,
                        "--force", "--precisions", "FP16"], small.env)
    assert result.returncode == 0, result.stderr
    assert "mo: Model Optimizer" in result.stdout
    assert (small.conv_dir / "FP16" / f"{NAME}.bin").stat().st_mtime_ns != before


def test_download_flag_fetches_missing_inputs(small, tmp_path, httpserver):
    for file in (f"{NAME}.prototxt", f"{NAME}.caffemodel"):
        httpserver.expect_request(f"/files/{file}").respond_with_data((small.src / file).read_bytes())
    args = ["--name", NAME, "--registry", small.registry, "-d", tmp_path / "dl", "--precisions", "FP16"]
    missing = converter(args, small.env)
    assert missing.returncode == 1 and "--download" in missing.stderr
    result = converter([*args, "--download"], small.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "dl" / "public" / NAME / "FP16" / f"{NAME}.xml").is_file()  # -o defaults to -d


def test_python_api_convert_and_load_reuse_the_ir(small, monkeypatch):
    import omz_tools
    monkeypatch.setenv("XDG_CACHE_HOME", str(small.cache))
    irs = omz_tools.convert(NAME, download_dir=small.dl, output_dir=small.out, registries=[small.registry])
    assert irs == {p: small.conv_dir / p / f"{NAME}.xml" for p in ("FP32", "FP16")}
    xml = omz_tools.load(NAME, download_dir=small.dl, output_dir=small.out, registries=[small.registry])
    assert xml == small.conv_dir / "FP16" / f"{NAME}.xml"
    compiled = omz_tools.load(NAME, "FP32", download_dir=small.dl, output_dir=small.out,
                              registries=[small.registry], compile="CPU")
    x = np.zeros(SMALL_INPUT_SHAPE, dtype=np.float32)
    assert compiled({"data": x})[compiled.output(0)].shape == (1, SMALL_CLASSES)
    from omz_tools.convert import ConversionError
    with pytest.raises(ConversionError, match=r"badcard: .*parameter count is 0\.006 M"):
        omz_tools.convert(NAME + "-badcard", download_dir=small.dl, output_dir=small.out,
                          registries=[small.registry], precisions=["FP32"])


@pytest.mark.parametrize("jobs", [1, 2])
def test_interrupt_stops_mo_and_leaves_no_ir(small, tmp_path, jobs):
    names = [NAME] if jobs == 1 else [NAME, NAME + "-nomean"]
    proc = subprocess.Popen([command("omz-converter"), "--name", ",".join(names), "--registry", str(small.registry),
                             "-d", str(small.dl), "-o", str(tmp_path), "-j", str(jobs)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=small.env, preexec_fn=restore_sigint)
    logs = [tmp_path / "public" / n / f".omz_convert.{n}.log" for n in names]
    while not all(log.exists() for log in logs) and proc.poll() is None:  # until every MO has started
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate()
    assert proc.returncode == 130, err
    assert err.strip() == "Interrupted: the conversions were stopped, with their Model Optimizer or ovc processes; IR folders are as before this run."
    for name in names:
        assert f"[{name}]" in out and f"{name}]" in out  # lines held for -j are still shown
        conv_dir = tmp_path / "public" / name
        assert not (conv_dir / "FP32").exists() and not list(conv_dir.glob("*.tmp"))
        # No MO left running for this output folder.
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert str(conv_dir) not in ps


def test_read_only_output_folder_fails_the_model_in_one_paragraph(small, small_tmpfs):
    remount(small_tmpfs, "ro")
    try:
        result = converter(["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", small_tmpfs / "out"],
                           small.env)
    finally:
        remount(small_tmpfs, "rw")
    assert result.returncode == 1
    assert (f"{NAME}: cannot write {small_tmpfs / 'out'}: Read-only file system. No IR was installed for {NAME}; "
            f"check the permissions, mount and free space of {small_tmpfs / 'out' / 'public' / NAME}") in result.stderr
    assert "Traceback" not in result.stderr


def test_full_disk_is_said_before_saving_not_blamed_on_the_model(small, small_tmpfs):
    """openvino.save_model writes cut-short files on a full disk without an error; the converter
    compares the room it needs with the free space first. Here Model Optimizer's output fits (a
    filler leaves 512 KiB of the 2 MiB tmpfs), the two precisions it would save do not."""
    import shutil
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(small_tmpfs).free - 512 * 1024))
    result = converter(["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", small_tmpfs / "out"],
                       small.env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{NAME}: not enough disk space to save the FP32, FP16 IR in {small_tmpfs / 'out' / 'public' / NAME}" \
        in result.stderr
    assert "No IR was installed (the FP32 and FP16 folders are unchanged)" in result.stderr
    assert "does not match the registry" not in result.stderr
    assert not (small_tmpfs / "out" / "public" / NAME / "FP32").exists()


def test_download_uses_the_downloaders_cache_with_the_origin_dead(small, tmp_path):
    """--download passes --cache_dir (and the other downloader settings) through: with the files
    in the cache and every origin URL dead, the model is fetched from the cache and converted."""
    cache = tmp_path / "omz-cache"
    fill = subprocess.run([command("omz-downloader"), "--name", NAME, "--registry", str(small.registry),
                           "-o", str(tmp_path / "first"), "--cache_dir", str(cache)], capture_output=True,
                          text=True, env=small.env)
    assert fill.returncode == 0, fill.stdout + fill.stderr
    dead = tmp_path / "dead-registry"
    files = [(f, *file_digest(small.src / f), f"http://127.0.0.1:9/{f}") for f in (f"{NAME}.prototxt", f"{NAME}.caffemodel")]
    write_model_yml(dead, NAME, files, input_shape=SMALL_INPUT_SHAPE, outputs={"prob": [1, SMALL_CLASSES]},
                    card_extra="  mparams: 0.006\n")
    args = ["--name", NAME, "--registry", dead, "-d", tmp_path / "dl", "--precisions", "FP32", "--download"]
    without = converter([*args, "--num_attempts", "1", "--timeout", "5"], small.env)
    assert without.returncode == 1 and "downloading its files failed" in without.stderr
    result = converter([*args, "--cache_dir", cache, "--offline"], small.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "dl" / "public" / NAME / "FP32" / f"{NAME}.xml").is_file()
    usage = converter(["--name", NAME, "--registry", dead, "--offline"], small.env)
    assert usage.returncode == 2 and "--offline only apply with --download" in usage.stderr
    bad = converter([*args, "--timeout", "soon"], small.env)
    assert bad.returncode == 2 and "--timeout" in bad.stderr


# -- backends -------------------------------------------------------------------------------------

def test_auto_picks_model_optimizer_here(small):
    """This venv has openvino-dev: auto uses Model Optimizer, as the model card describes."""
    assert "  check: backend mo (auto: Model Optimizer 2024.6.0 of " in small.result.stdout
    record = json.loads((small.conv_dir / "FP32" / ".omz_converted.json").read_text())
    assert record["backend"] == "mo" and record["key"]["versions"]["backend"] == "mo"


def test_native_backend_passes_the_checks_and_agrees_with_model_optimizer(small, tmp_path):
    args = ["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", tmp_path, "--backend", "native"]
    result = converter(args, small.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "  check: backend native (--backend native)" in result.stdout
    assert "  native: native Caffe front end, FP32" in result.stdout and "Model Optimizer" not in result.stdout
    conv_dir = tmp_path / "public" / NAME
    for precision in ("FP32", "FP16"):
        assert sorted(p.name for p in (conv_dir / precision).iterdir()) == [".omz_converted.json", f"{NAME}.bin",
                                                                           f"{NAME}.xml"]
        record = json.loads((conv_dir / precision / ".omz_converted.json").read_text())
        assert record["backend"] == "native" and record["key"]["versions"]["native_caffe"]
        assert not any(a.startswith("python ") for a in record["key"]["mo_command"])
        assert f"  {NAME} {precision}: {conv_dir / precision / NAME}.xml [input data 1x3x64x64; " in result.stdout
    assert "0.006 M parameters (card 0.006)" in result.stdout and "; native]" in result.stdout
    assert sorted(p.name for p in conv_dir.iterdir()) == ["FP16", "FP32"]  # no lock, log or scratch left
    rng = np.random.default_rng(11)
    for _ in range(3):
        x = rng.uniform(0, 255, SMALL_INPUT_SHAPE).astype(np.float32)
        native = infer(conv_dir / "FP32" / f"{NAME}.xml", x, F32)
        mo = infer(small.conv_dir / "FP32" / f"{NAME}.xml", x, F32)
        assert native.argmax() == mo.argmax()
        np.testing.assert_allclose(native, mo, atol=1e-5 * float(np.abs(mo).max()), rtol=0)
    # Up to date for the native backend; the MO record of the same folder would not be.
    again = converter([*args, "--progress_format", "json"], small.env)
    assert json.loads(again.stdout.splitlines()[-1])["skipped"] == [NAME]
    assert json.loads(again.stdout.splitlines()[-1])["irs"][0]["backend"] == "native"
    mo_run = converter([*args[:-1], "mo", "--precisions", "FP32", "--progress_format", "json"], small.env)
    summary = json.loads(mo_run.stdout.splitlines()[-1])
    assert summary["skipped"] == [] and summary["irs"][0]["backend"] == "mo", mo_run.stderr


@pytest.mark.parametrize("where", ["same disk", "other file system"])
def test_a_precision_folder_that_is_a_link_stays_and_gets_the_ir(small, tmp_path, where, request):
    """FP32/ made a symbolic link by the user (an IR kept on another disk, as omz_converter wrote
    through it): the new IR goes where the link points, the link stays, nothing is left beside
    either, and a rerun finds the IR up to date."""
    elsewhere = request.getfixturevalue("small_tmpfs") if where == "other file system" else tmp_path / "disk"
    real = elsewhere / "se-fp32"
    real.mkdir(parents=True)
    (real / "stale.txt").write_text("the previous IR")
    conv_dir = tmp_path / "out" / "public" / NAME
    conv_dir.mkdir(parents=True)
    (conv_dir / "FP32").symlink_to(real, target_is_directory=True)
    args = ["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", tmp_path / "out",
            "--backend", "native", "--progress_format", "json"]
    result = converter(args, small.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (conv_dir / "FP32").is_symlink() and Path(os.readlink(conv_dir / "FP32")) == real
    assert sorted(p.name for p in real.iterdir()) == [".omz_converted.json", f"{NAME}.bin", f"{NAME}.xml"]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["se-fp32"]
    assert sorted(p.name for p in conv_dir.iterdir()) == ["FP16", "FP32"] and not (conv_dir / "FP16").is_symlink()
    x = np.random.default_rng(5).uniform(0, 255, SMALL_INPUT_SHAPE).astype(np.float32)
    ours, before = infer(real / f"{NAME}.xml", x, F32), infer(small.conv_dir / "FP32" / f"{NAME}.xml", x, F32)
    np.testing.assert_allclose(ours, before, atol=1e-5 * float(np.abs(before).max()), rtol=0)
    again = converter(args, small.env)
    assert json.loads(again.stdout.splitlines()[-1])["skipped"] == [NAME], again.stdout + again.stderr


def test_a_dangling_link_and_a_file_at_a_precision_folder_get_the_ir(small, tmp_path):
    """FP32/ a link to a folder not made yet, FP16 a stray file: FP32's folder is made where the link
    points (the link stays), the file is replaced by the FP16 folder, and nothing else is left."""
    conv_dir = tmp_path / "out" / "public" / NAME
    conv_dir.mkdir(parents=True)
    real = tmp_path / "disk" / "not-yet" / "fp32"
    (conv_dir / "FP32").symlink_to(real, target_is_directory=True)
    (conv_dir / "FP16").write_text("not an IR folder")
    result = converter(["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", tmp_path / "out",
                        "--backend", "native"], small.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (conv_dir / "FP32").is_symlink() and (conv_dir / "FP32" / f"{NAME}.xml").is_file()
    assert sorted(p.name for p in real.parent.iterdir()) == ["fp32"]
    assert (conv_dir / "FP16").is_dir() and not (conv_dir / "FP16").is_symlink()
    assert sorted(p.name for p in conv_dir.iterdir()) == ["FP16", "FP32"]


def test_native_dry_run_names_the_backend_and_runs_nothing(small, tmp_path):
    result = converter(["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", tmp_path / "out",
                        "--backend", "native", "--dry_run"], small.env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "(DRY RUN) Backend: native (--backend native)" in lines
    native = next(line for line in lines if line.startswith("(DRY RUN) Native Caffe front end, in this process: "))
    assert f"--input_model={small.dl / 'public' / NAME / NAME}.caffemodel" in native
    assert "--caffe_parser_path" not in native and "Conversion command" not in result.stdout
    assert any(line.startswith("(DRY RUN) FP16: openvino.save_model(the native model, ") for line in lines)
    assert not (tmp_path / "out").exists()


def test_native_unsupported_layer_fails_that_model_alone(small, tmp_path):
    """A layer type the native front end lacks: that model fails with the front end's message
    (which points to --backend mo); the other model converts; nothing at the failed one's IR path."""
    odd = "odd-layer"
    folder = tmp_path / "dl" / "public" / odd
    folder.mkdir(parents=True)
    text = (small.src / f"{NAME}.prototxt").read_text()
    first = text.index('  bottom: "data"')  # the first convolution reads an MVN of the input instead
    (folder / f"{odd}.prototxt").write_text(
        text[:first].replace('layer {\n  name: "conv1/7x7_s2"',
                             'layer { name: "norm" type: "MVN" bottom: "data" top: "norm" }\n'
                             'layer {\n  name: "conv1/7x7_s2"') + '  bottom: "norm"' + text[first + len('  bottom: "data"'):])
    shutil_copy(small.src / f"{NAME}.caffemodel", folder / f"{odd}.caffemodel")
    files = [(f, *file_digest(folder / f), f"http://127.0.0.1:9/{f}") for f in (f"{odd}.prototxt", f"{odd}.caffemodel")]
    registry = tmp_path / "registry"
    write_model_yml(registry, odd, files, input_shape=SMALL_INPUT_SHAPE, outputs={"prob": [1, SMALL_CLASSES]})
    for name in (f"{NAME}.prototxt", f"{NAME}.caffemodel"):
        (tmp_path / "dl" / "public" / NAME).mkdir(parents=True, exist_ok=True)
        shutil_copy(small.dl / "public" / NAME / name, tmp_path / "dl" / "public" / NAME / name)
    result = converter(["--name", f"{odd},{NAME}", "--registry", registry, "--registry", small.registry,
                        "-d", tmp_path / "dl", "-o", tmp_path / "out", "--backend", "native", "--precisions", "FP32"],
                       small.env)
    assert result.returncode == 1
    failed = result.stderr.split("FAILED:\n")[1].splitlines()
    assert len(failed) == 1 and failed[0].startswith(f"{odd}: the native Caffe front end cannot convert it: ")
    assert 'layer "norm" has type "MVN"' in failed[0] and "--backend mo" in failed[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "public" / odd).exists()  # no IR, no empty folder
    assert (tmp_path / "out" / "public" / NAME / "FP32" / f"{NAME}.xml").is_file()


def shutil_copy(src, dst):
    import shutil
    shutil.copyfile(src, dst)


def test_heartbeat_while_a_phase_runs_and_no_lock_left(small, tmp_path):
    env = dict(small.env, OMZ_HEARTBEAT_SECONDS="0.5")
    args = ["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", tmp_path, "--precisions", "FP32"]
    result = converter([*args, "--progress_format", "json"], env)
    assert result.returncode == 0, result.stderr
    beats = [e for e in map(json.loads, result.stdout.splitlines()) if e["$type"] == "model_conversion_heartbeat"]
    assert beats and {"model", "phase", "phase_seconds", "seconds"} <= set(beats[0])
    assert any(b["phase"] == "mo" for b in beats)
    text = converter([*args, "--force"], env)
    assert text.returncode == 0, text.stderr
    assert f"  ... {NAME}: mo running for " in text.stdout
    assert not list((tmp_path / "public" / NAME).glob("*.lock"))


def test_load_logs_progress_by_default_and_is_quiet_when_asked(small, monkeypatch, caplog):
    import logging

    import omz_tools
    monkeypatch.setenv("XDG_CACHE_HOME", str(small.cache))
    caplog.set_level(logging.INFO, logger="omz_tools")
    omz_tools.load(NAME, download_dir=small.dl, output_dir=small.out, registries=[small.registry])
    messages = [r.getMessage() for r in caplog.records if r.name == "omz_tools"]
    assert any("checking its files" in m for m in messages)
    assert any(m.startswith(f"{NAME} FP16: {small.conv_dir / 'FP16' / NAME}.xml [") for m in messages), messages
    caplog.clear()
    omz_tools.load(NAME, download_dir=small.dl, output_dir=small.out, registries=[small.registry], progress=False)
    assert not [r for r in caplog.records if r.name == "omz_tools"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_unexpected_error_is_that_models_failed_line_with_the_log(small, tmp_path, monkeypatch, jobs):
    """A bug inside one model's conversion (injected: nothing here raises one for real) becomes
    that model's FAILED line pointing to its log, which holds the traceback; no traceback is
    printed and the other model goes on."""
    import io

    from omz_tools.convert import records
    from omz_tools.convert.engine import Options, run
    from omz_tools.convert.progress import TextReporter
    from omz_tools.registry import Registry
    real = records.input_fingerprint

    def broken(model, download_dir):
        if model.name == NAME:
            raise ZeroDivisionError("boom")
        return real(model, download_dir)

    monkeypatch.setattr(records, "input_fingerprint", broken)
    monkeypatch.setenv("XDG_CACHE_HOME", str(small.cache))
    registry = Registry.from_options([small.registry])
    models = [registry.load(NAME), registry.load(NAME + "-nomean")]
    out, err = io.StringIO(), io.StringIO()
    reporter = TextReporter(out, err, group=jobs > 1)
    result = run(models, Options(download_dir=small.dl, output_dir=tmp_path, precisions={"FP32"}, jobs=jobs), reporter)
    reporter.summary(result)
    log = tmp_path / "public" / NAME / f".omz_convert.{NAME}.log"
    assert list(result.failures) == [NAME]
    assert result.failures[NAME] == (f"unexpected error (ZeroDivisionError: boom). No IR was installed for {NAME}; "
                                     f"this is a bug in omz_tools: please report it with the traceback in {log}.")
    assert "Traceback (most recent call last)" in log.read_text() and "ZeroDivisionError: boom" in log.read_text()
    assert "Traceback" not in out.getvalue() + err.getvalue()
    assert f"FAILED:\n{NAME}: unexpected error" in err.getvalue()
    assert (tmp_path / "public" / (NAME + "-nomean") / "FP32" / f"{NAME}-nomean.xml").is_file()


def test_auto_without_model_optimizer_converts_natively(small, tmp_path):
    """-p names an interpreter without openvino-dev: auto converts the Caffe model natively (in this
    process); --backend mo fails it in one message that names the way out."""
    import sys
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    args = ["--name", NAME, "--registry", small.registry, "-d", small.dl, "-o", tmp_path / "out", "-p",
            bare / "bin" / "python", "--precisions", "FP16"]
    result = converter(args, small.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"  check: backend native (auto: {bare / 'bin' / 'python'} has no Model Optimizer)" in result.stdout
    assert (tmp_path / "out" / "public" / NAME / "FP16" / f"{NAME}.xml").is_file()
    refused = converter([*args, "--backend", "mo", "--force"], small.env)
    assert refused.returncode == 1
    assert "has no openvino.tools.mo package" in refused.stderr
    assert "Caffe models also convert without it: --backend native (or auto)." in refused.stderr
