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


def infer(xml, x):
    import openvino as ov
    compiled = ov.Core().compile_model(str(xml), "CPU")
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
    assert err.strip() == "Interrupted: Model Optimizer was stopped; IR folders are as before this run."
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
    usage = converter(["--name", NAME, "--registry", dead, "--cache_dir", cache], small.env)
    assert usage.returncode == 2 and "--cache_dir only apply with --download" in usage.stderr
    bad = converter([*args, "--timeout", "soon"], small.env)
    assert bad.returncode == 2 and "--timeout" in bad.stderr
