"""Converted IR shared through the caches (convert/ircache.py): runners converting the same way
fetch and verify the IR from a real S3 endpoint (moto on 127.0.0.1) or a folder cache instead of
converting. The native Caffe front end converts (no Model Optimizer), on a small SE-ResNet."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import command
from helpers_caffe import (SMALL_CLASSES, SMALL_INPUT_SHAPE, file_digest, small_se_resnet_prototxt, write_caffemodel,
                           write_model_yml)
from helpers_cache import downloader, offline_env
from helpers_nginx import nginx_factory, nginx_mirror  # noqa: F401
from helpers_s3 import moto_server, bucket  # noqa: F401

pytestmark = pytest.mark.native
pytest.importorskip("openvino")
NAME = "tiny-se"


@pytest.fixture
def registry(tmp_path, nginx_mirror):
    src = nginx_mirror.root / "files"
    src.mkdir()
    (src / f"{NAME}.prototxt").write_text(small_se_resnet_prototxt())
    write_caffemodel(src / f"{NAME}.prototxt", src / f"{NAME}.caffemodel", seed=2)
    files = [(f, *file_digest(src / f), nginx_mirror.url_for(f"files/{f}"))
             for f in (f"{NAME}.prototxt", f"{NAME}.caffemodel")]
    write_model_yml(tmp_path / "reg", NAME, files, input_shape=SMALL_INPUT_SHAPE,
                    outputs={"prob": [1, SMALL_CLASSES]})
    return tmp_path / "reg"


def runner(tmp_path, registry, env, name: str, *extra) -> tuple:
    """One CI runner: its own download and output folders; download, then convert (native backend)."""
    dl, out = tmp_path / f"{name}-dl", tmp_path / f"{name}-out"
    fetched = downloader("--registry", registry, "--name", NAME, "-o", dl, env=env)
    assert fetched.returncode == 0, fetched.stderr
    proc = subprocess.run([command("omz-converter"), "--registry", str(registry), "--name", NAME, "-d", str(dl),
                           "-o", str(out), "--backend", "native", "--precisions", "FP32,FP16", *map(str, extra)],
                          capture_output=True, text=True, env=offline_env(env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, out / "public" / NAME


def ir_files(folder) -> dict:
    return {f"{p}/{f.name}": f.read_bytes() for p in ("FP32", "FP16") for f in sorted((folder / p).iterdir())
            if not f.name.startswith(".")}


def converted(proc) -> bool:
    return "native: native Caffe front end" in proc.stdout


def test_second_runner_fetches_byte_identical_ir_and_converts_nothing(tmp_path, registry, moto_server, bucket,
                                                                     clean_env):
    env = dict(moto_server.env(clean_env), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    url = f"s3://{bucket}/ci"
    first, a = runner(tmp_path, registry, env, "a", "--cache_dir", url)
    assert converted(first)
    assert [k for k in moto_server.keys(bucket) if "/ir/" in k], moto_server.keys(bucket)
    second, b = runner(tmp_path, registry, env, "b", "--cache_dir", url)
    assert not converted(second) and f"the IR from the IR cache {url}" in second.stdout, second.stdout
    assert ir_files(b) == ir_files(a) and len(ir_files(a)) == 4
    record = json.loads((b / "FP32" / ".omz_converted.json").read_text())
    assert record["backend"] == "native" and record["ir_cache"] == url
    # Up to date on the next run: the restored record holds this runner's own key.
    third = subprocess.run([command("omz-converter"), "--registry", str(registry), "--name", NAME,
                            "-d", str(tmp_path / "b-dl"), "-o", str(tmp_path / "b-out"), "--backend", "native",
                            "--precisions", "FP32,FP16", "--cache_dir", url], capture_output=True, text=True,
                           env=offline_env(env))
    assert third.returncode == 0 and "IR up to date" in third.stdout, third.stdout + third.stderr
    # --no_ir_cache converts.
    fourth, _ = runner(tmp_path, registry, env, "c", "--cache_dir", url, "--no_ir_cache")
    assert converted(fourth)


def test_another_argument_or_openvino_version_misses(tmp_path, registry, moto_server, bucket, clean_env,
                                                     monkeypatch):
    env = dict(moto_server.env(clean_env), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    url = f"s3://{bucket}/ci"
    first, a = runner(tmp_path, registry, env, "a", "--cache_dir", url)
    other, _ = runner(tmp_path, registry, env, "b", "--cache_dir", url, "--add_mo_arg=--scale_values=data[2,2,2]")
    assert converted(other)
    # The same key with another openvino version names another manifest: a miss in the real bucket.
    from omz_tools.convert import ircache
    from omz_tools.download.options import NetLimits
    from omz_tools.download.s3cache import S3Tier
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    manifest = next(k for k in moto_server.keys(bucket) if "/ir/" in k)
    stored = json.loads(moto_server.client().get_object(Bucket=bucket, Key=manifest)["Body"].read())
    said = []
    cache = ircache.IrCache(None, [S3Tier(url, limits=NetLimits())], lambda model, text: said.append(text))

    class Model:
        name = NAME
    assert cache.restore(Model, stored["key"], tmp_path / "same") is not None  # the stored key hits
    newer = {**stored["key"], "versions": {**stored["key"]["versions"], "openvino": "2099.1.0"}}
    assert cache.restore(Model, newer, tmp_path / "newer") is None and not said


def test_a_rotten_ir_object_is_refused_and_the_model_converted(tmp_path, registry, moto_server, bucket, clean_env):
    env = dict(moto_server.env(clean_env), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    url = f"s3://{bucket}/ci"
    first, a = runner(tmp_path, registry, env, "a", "--cache_dir", url)
    client = moto_server.client()
    binary = (a / "FP32" / f"{NAME}.bin").read_bytes()
    from helpers_cache import digest
    value = digest(binary)
    rotten = bytearray(binary)
    rotten[len(rotten) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=f"ci/sha256/{value[:2]}/{value[2:]}", Body=bytes(rotten))
    second, b = runner(tmp_path, registry, env, "b", "--cache_dir", url)
    assert converted(second) and "did not verify against its manifest" in second.stdout, second.stdout
    assert ir_files(b) == ir_files(a)
    repaired = client.get_object(Bucket=bucket, Key=f"ci/sha256/{value[:2]}/{value[2:]}")["Body"].read()
    assert repaired == binary  # the converted IR replaced the rotten object
    third, _ = runner(tmp_path, registry, env, "c", "--cache_dir", url)
    assert not converted(third)


def test_an_ir_object_longer_than_its_manifest_says_is_refused(tmp_path, moto_server, bucket, clean_env,
                                                                monkeypatch):
    # A whole number of read chunks (1 MiB), then more: the first MiB hashes right, and the object
    # is still not the file the manifest names.
    from helpers_cache import digest
    from omz_tools.convert import ircache
    from omz_tools.download.options import NetLimits
    from omz_tools.download.s3cache import S3Tier
    for name, value in moto_server.env(clean_env).items():
        monkeypatch.setenv(name, value)
    data = bytes(range(256)) * 4096
    value = digest(data)
    client = moto_server.client()
    url = f"s3://{bucket}/ci"
    cache = ircache.IrCache(None, [S3Tier(url, limits=NetLimits())], lambda model, text: None)
    client.put_object(Bucket=bucket, Key=f"ci/sha256/{value[:2]}/{value[2:]}", Body=data)
    assert cache._fetch_file(url, value, len(data), tmp_path / "exact.bin")
    assert (tmp_path / "exact.bin").read_bytes() == data
    client.put_object(Bucket=bucket, Key=f"ci/sha256/{value[:2]}/{value[2:]}", Body=data + b"more")
    assert not cache._fetch_file(url, value, len(data), tmp_path / "longer.bin")
    assert not (tmp_path / "longer.bin").exists()


def test_a_folder_cache_shares_ir_too(tmp_path, registry, clean_env):
    env = dict(clean_env, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    first, a = runner(tmp_path, registry, env, "a", "--cache_dir", tmp_path / "cache")
    second, b = runner(tmp_path, registry, env, "b", "--cache_dir", tmp_path / "cache")
    assert converted(first) and not converted(second)
    assert ir_files(b) == ir_files(a)


def test_the_key_is_the_same_on_runners_with_other_folders_and_venvs_only():
    from omz_tools.convert.ircache import key_digest, portable_key

    def key(root, openvino="2024.6.0"):
        return {"recipe": 1, "precision": "FP32", "versions": {"backend": "mo", "openvino": openvino},
                "inputs": [{"name": "m.caffemodel", "size": 5, "sha256": "ab", "stat": {"mtime_ns": len(root)}}],
                "mo_command": [f"python 3.11.9 in {root}/venv", f"{root}/venv/lib/mo/main.py",
                               f"--input_model={root}/dl/public/m/m.caffemodel", f"--output_dir={root}/out/public/m/FP32",
                               f"--extensions={root}/venv/lib/mo/extensions"]}

    def portable(root, **kwargs):
        return key_digest(portable_key(key(root, **kwargs), f"{root}/dl", f"{root}/out", f"{root}/venv/lib/mo"))
    assert portable("/runner-a") == portable("/home/ci/b")
    assert portable("/runner-a") != portable("/runner-a", openvino="2025.0.0")
    assert portable_key(key("/r"), "/r/dl", "/r/out", "/r/venv/lib/mo")["mo_command"] == [
        "python 3.11.9", "$mo_dir/main.py", "--input_model=$dl_dir/public/m/m.caffemodel",
        "--output_dir=$out_dir/public/m/FP32", "--extensions=$mo_dir/extensions"]


def test_the_python_api_takes_the_ir_cache_too(tmp_path, registry, clean_env, monkeypatch):
    import omz_tools
    from omz_tools.convert.progress import Reporter

    env = dict(clean_env, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    first, a = runner(tmp_path, registry, env, "a", "--cache_dir", tmp_path / "cache")
    assert converted(first)
    fetched = downloader("--registry", registry, "--name", NAME, "-o", tmp_path / "api-dl", env=env)
    assert fetched.returncode == 0, fetched.stderr
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    phases = []

    class Phases(Reporter):
        def phase(self, model, phase, detail=""):
            phases.append((phase, detail))
    irs = omz_tools.convert(NAME, download_dir=tmp_path / "api-dl", output_dir=tmp_path / "api-out",
                            registries=[registry], backend="native", cache_dir=tmp_path / "cache", progress=Phases())
    assert ("install", f"the IR from the IR cache {tmp_path / 'cache'}") in phases
    assert not any(name == "native" for name, _ in phases), phases
    assert {f"{p}/{x.name}": x.read_bytes() for p, xml in irs.items() for x in (xml, xml.with_suffix(".bin"))} \
        == {k: v for k, v in ir_files(a).items()}
    phases.clear()
    again = omz_tools.convert(NAME, download_dir=tmp_path / "api-dl", output_dir=tmp_path / "api-out2",
                              registries=[registry], backend="native", cache_dir=tmp_path / "cache",
                              ir_cache=False, progress=Phases())
    assert any(name == "native" for name, _ in phases) and again["FP32"].is_file(), phases
