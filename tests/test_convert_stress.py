"""Many models converted at once, many times: -j must never hang.

Model Optimizer's runs are processes of their own; what runs on the converter's threads is
OpenVINO (reading, FP16 saving, compiling and one inference per IR), and that is where -j once
hung (two threads blocked in ``compiled(inputs)``). These tests drive that part hard: in-process
from 4 threads at once, and through the CLI with -j 2 and -j 4. A hang fails with every thread's
stack (the guards in conftest.py, and the explicit deadline below)."""

from __future__ import annotations

import faulthandler
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import command
from helpers_caffe import (
    SMALL_CLASSES, SMALL_INPUT_SHAPE, conv_fc_gflops, file_digest, small_se_resnet_prototxt, write_caffemodel,
    write_model_yml,
)

NAMES = [f"stress-{i}" for i in range(4)]
HANG_GUARD = 600  # seconds; a guard against a hang, far above a normal run (a few seconds)


@pytest.fixture(scope="module")
def stress(tmp_path_factory):
    """Four registry entries (two with --mean_values), their files in place, converted once (FP32)."""
    root = tmp_path_factory.mktemp("stress")
    cache = root / "cache"
    src = root / "src"
    src.mkdir()
    text = small_se_resnet_prototxt()
    (src / "m.prototxt").write_text(text)
    write_caffemodel(src / "m.prototxt", src / "m.caffemodel", cache, seed=2)
    card = f"  mparams: 0.006\n  gflops: {conv_fc_gflops(text, cache):.6f}\n"
    registry, dl = root / "registry", root / "dl"
    for i, name in enumerate(NAMES):
        folder = dl / "public" / name
        folder.mkdir(parents=True)
        files = []
        for suffix in ("prototxt", "caffemodel"):
            shutil.copyfile(src / f"m.{suffix}", folder / f"{name}.{suffix}")
            files.append((f"{name}.{suffix}", *file_digest(folder / f"{name}.{suffix}"),
                          f"http://127.0.0.1:9/{name}.{suffix}"))
        write_model_yml(registry, name, files, input_shape=SMALL_INPUT_SHAPE, outputs={"prob": [1, SMALL_CLASSES]},
                        mean=i % 2 == 0, card_extra=card)
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OMZ_REGISTRY", "OMZ_MIRROR", "OMZ_OFFLINE")}
    env.update(CI="true", XDG_CACHE_HOME=str(cache))
    out = root / "out"
    first = convert_cli(["--name", ",".join(NAMES), "--registry", registry, "-d", dl, "-o", out, "--precisions", "FP32",
                         "-j", "4"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    return SimpleNamespace(root=root, registry=registry, dl=dl, out=out, env=env, cache=cache)


def convert_cli(args, env):
    return subprocess.run([command("omz-converter"), *map(str, args)], capture_output=True, text=True, env=env)


def _finish(futures) -> list:
    try:
        return [f.result(timeout=HANG_GUARD) for f in futures]
    except FutureTimeout:
        faulthandler.dump_traceback(all_threads=True)
        pytest.fail(f"threads still converting after {HANG_GUARD} s: a hang (stacks above)")


@pytest.mark.parametrize("threads, rounds", [(2, 12), (4, 12)])
def test_fp16_and_checks_of_many_irs_at_once_in_one_process(stress, tmp_path, threads, rounds):
    """The engine's OpenVINO part (read, save FP32+FP16, compile, infer, figures) from several
    threads at once, over and over, each on a different model's IR."""
    from omz_tools.convert.engine import Converter, Options, Outcome
    from omz_tools.registry import Registry
    registry = Registry.from_options([stress.registry])
    converter = Converter(Options(download_dir=stress.dl, output_dir=stress.out))

    def work(worker: int) -> int:
        model = registry.load(NAMES[worker % len(NAMES)])
        mo_dir = stress.out / "public" / model.name / "FP32"  # an IR Model Optimizer wrote
        for round_ in range(rounds):
            tmp = tmp_path / f"w{worker}-{round_}"
            tmp.mkdir()
            outcome = Outcome(model.name, ok=True)
            converter._derive_and_verify(model, ["FP32", "FP16"], mo_dir / f"{model.name}.xml", tmp,
                                         {p: tmp / "final" / p for p in ("FP32", "FP16")}, outcome)
            assert round(outcome.figures.mparams, 3) == 0.006 and "data" in outcome.figures.inputs
            assert (tmp / "FP16" / f"{model.name}.bin").stat().st_size < (tmp / "FP32" / f"{model.name}.bin").stat().st_size
            shutil.rmtree(tmp)
        return rounds

    with ThreadPoolExecutor(threads) as pool:
        assert _finish([pool.submit(work, w) for w in range(threads)]) == [rounds] * threads


@pytest.mark.parametrize("jobs", [2, 4])
def test_cli_converts_several_models_at_once_again_and_again(stress, tmp_path, jobs):
    """-j N over four models, --force, a few times in a row: every run ends, every IR installed."""
    for round_ in range(2):
        result = convert_cli(["--name", ",".join(NAMES), "--registry", stress.registry, "-d", stress.dl,
                              "-o", tmp_path, "--precisions", "FP32,FP16", "-j", jobs, "--force"], stress.env)
        assert result.returncode == 0, result.stdout + result.stderr
        for name in NAMES:
            for precision in ("FP32", "FP16"):
                assert (tmp_path / "public" / name / precision / f"{name}.xml").is_file()


@pytest.mark.parametrize("jobs", [2, 4])
def test_cli_native_backend_many_models_many_times(stress, tmp_path, jobs):
    """The native backend runs in the converter's own threads (no Model Optimizer process): -j N
    over four models, --force, ten runs in a row."""
    for round_ in range(10):
        result = convert_cli(["--name", ",".join(NAMES), "--registry", stress.registry, "-d", stress.dl,
                              "-o", tmp_path, "-j", jobs, "--force", "--backend", "native"], stress.env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count("; native]") == 2 * len(NAMES)
