"""$OMZ_CACHE_DIR: the caches of --cache_dir from the environment (space separated, nearest first),
for omz-downloader, omz-converter's IR cache and the Python API; a given --cache_dir replaces it.
The S3 tier runs against moto's server on 127.0.0.1 (tests/helpers_s3.py), the origin is nginx."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers_cache import downloader, served_by
from helpers_nginx import nginx_factory, nginx_mirror  # noqa: F401
from helpers_s3 import moto_server, bucket  # noqa: F401
from test_cache_s3 import key, model, origin, origin_gets, run  # noqa: F401
from test_cache_s3_ir import NAME, converted, ir_files, registry, runner  # noqa: F401

pytestmark = pytest.mark.native


def entries(folder: Path) -> int:
    return sum(1 for p in (folder / "sha256").rglob("*") if p.is_file()) if (folder / "sha256").is_dir() else 0


def test_build_reads_the_variable_and_a_given_cache_dir_replaces_it():
    from omz_tools.download.options import DownloadOptions
    from omz_tools.download.sources import SourceConfigError

    env = {"OMZ_CACHE_DIR": " /c/omz  s3://b/ci/ s3://other "}
    options = DownloadOptions.build(env=env)
    assert options.cache_dir == Path("/c/omz") and options.s3_caches == ("s3://b/ci", "s3://other")
    given = DownloadOptions.build(cache_dir=["/mine"], env=env)
    assert given.cache_dir == Path("/mine") and given.s3_caches == ()
    assert DownloadOptions.build(cache_dir=(), env=env).s3_caches == ("s3://b/ci", "s3://other")  # click's none
    assert DownloadOptions.build(env={"OMZ_CACHE_DIR": "  "}).cache_dir is None
    for bad, said in (("s3://", "s3://BUCKET"), ("/a /b", "at most one folder")):
        with pytest.raises(SourceConfigError) as error:
            DownloadOptions.build(env={"OMZ_CACHE_DIR": bad})
        assert str(error.value).startswith("OMZ_CACHE_DIR: ") and said in str(error.value)


def test_the_variable_alone_with_a_folder(tmp_path, origin, clean_env):
    reg, data = model(tmp_path, origin)
    env = dict(clean_env, OMZ_CACHE_DIR=str(tmp_path / "cache"))
    assert run(reg, tmp_path / "out1", env).returncode == 0
    second = run(reg, tmp_path / "out2", env)
    assert second.returncode == 0, second.stderr
    assert set(served_by(second.stdout).values()) == {f"cache {tmp_path / 'cache'}"}
    assert origin_gets(origin) == 2 and entries(tmp_path / "cache") == 2


def test_the_variable_with_a_bucket_then_a_folder_in_front(tmp_path, origin, moto_server, bucket, clean_env):
    reg, data = model(tmp_path, origin)
    url = f"s3://{bucket}/env"
    env = moto_server.env(clean_env)
    first = run(reg, tmp_path / "out1", dict(env, OMZ_CACHE_DIR=url))
    assert first.returncode == 0, first.stderr
    assert moto_server.keys(bucket) == sorted(key("env", blob) for blob in data.values())
    both = dict(env, OMZ_CACHE_DIR=f"{tmp_path / 'cache'} {url}")
    second = run(reg, tmp_path / "out2", both)
    assert set(served_by(second.stdout).values()) == {f"cache-s3 {url}"}, second.stdout
    third = run(reg, tmp_path / "out3", both)
    assert set(served_by(third.stdout).values()) == {f"cache {tmp_path / 'cache'}"}
    assert origin_gets(origin) == 2


def test_the_option_replaces_the_variable(tmp_path, origin, moto_server, bucket, clean_env):
    reg, data = model(tmp_path, origin)
    env = dict(moto_server.env(clean_env), OMZ_CACHE_DIR=f"s3://{bucket}/env")
    proc = run(reg, tmp_path / "out", env, "--cache_dir", tmp_path / "mine")
    assert proc.returncode == 0, proc.stderr
    assert moto_server.keys(bucket) == [] and entries(tmp_path / "mine") == 2
    # An unusable variable does not matter once --cache_dir is given.
    dry = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out2", "--dry_run",
                     "--cache_dir", tmp_path / "mine", env=dict(clean_env, OMZ_CACHE_DIR="s3://"))
    assert dry.returncode == 0, dry.stderr


@pytest.mark.parametrize("value", ["s3://", "/one /two"])
def test_an_invalid_variable_is_one_usage_message(tmp_path, origin, clean_env, value):
    reg, data = model(tmp_path, origin)
    proc = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out", env=dict(clean_env, OMZ_CACHE_DIR=value))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    # Said as click says every usage error (as for a bad OMZ_MIRROR or OMZ_TIMEOUT): one Error: line.
    said = [line for line in proc.stderr.splitlines() if "OMZ_CACHE_DIR" in line]
    assert len(said) == 1 and said[0].startswith("Error: OMZ_CACHE_DIR: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert origin_gets(origin) == 0 and not (tmp_path / "out").exists()


def test_the_converter_and_the_api_share_ir_through_the_variable(tmp_path, registry, clean_env, monkeypatch):
    import omz_tools

    env = dict(clean_env, XDG_CACHE_HOME=str(tmp_path / "xdg"), OMZ_CACHE_DIR=str(tmp_path / "cache"))
    first, a = runner(tmp_path, registry, env, "a")
    second, b = runner(tmp_path, registry, env, "b")
    assert converted(first) and not converted(second), second.stdout
    assert ir_files(b) == ir_files(a)
    third, _ = runner(tmp_path, registry, env, "c", "--cache_dir", tmp_path / "other")
    assert converted(third)  # the option replaced the variable: another, empty cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("OMZ_CACHE_DIR", str(tmp_path / "cache"))
    irs = omz_tools.convert(NAME, download_dir=tmp_path / "a-dl", output_dir=tmp_path / "api-out",
                            registries=[registry], backend="native")
    assert {f"{p}/{x.name}": x.read_bytes() for p, xml in irs.items() for x in (xml, xml.with_suffix(".bin"))} \
        == ir_files(a)
    record = (tmp_path / "api-out" / "public" / NAME / "FP32" / ".omz_converted.json").read_text()
    assert str(tmp_path / "cache") in record  # fetched from the IR cache, not converted
