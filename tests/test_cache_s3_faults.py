"""Throttling and server errors from the S3 cache tier: a fault-injecting HTTP proxy on 127.0.0.1
(tests/helpers_s3.SlowDownProxy) in front of moto's server answers the first requests for an
object with 503 SlowDown (S3's XML error body), as a busy bucket does. A GET is retried by the
Fetcher (--num_attempts in all, Retry-After honoured, JSON retry events naming cache-s3); a HEAD is
retried inside botocore within the same --num_attempts; the attempts are never multiplied."""

from __future__ import annotations

import pytest

from helpers_cache import digest, events, served_by
from helpers_nginx import nginx_factory, nginx_mirror  # noqa: F401
from helpers_s3 import SlowDownProxy, moto_server, bucket  # noqa: F401
from test_cache_s3 import key, model, origin, origin_gets, run  # noqa: F401

pytestmark = pytest.mark.native


@pytest.fixture
def filled(tmp_path, origin, moto_server, bucket):
    """(registry, data, s3 URL): the model's files already in the bucket, put there directly."""
    reg, data = model(tmp_path, origin)
    for blob in data.values():
        moto_server.client().put_object(Bucket=bucket, Key=key("ci", blob), Body=blob)
    return reg, data, f"s3://{bucket}/ci"


def through(proxy, moto_server, clean_env) -> dict:
    return dict(moto_server.env(clean_env), AWS_ENDPOINT_URL=proxy.url)


def requests_for(proxy, method: str, blob: bytes) -> list:
    return [status for m, path, status in proxy.log if m == method and digest(blob)[2:] in path]


def test_slow_down_on_a_get_is_retried_from_the_bucket_and_the_origin_is_not_contacted(
        tmp_path, origin, moto_server, filled, clean_env):
    reg, data, url = filled
    proxy = SlowDownProxy(moto_server.port, fail_first=2, match=digest(data["w.bin"])[2:], retry_after=1)
    try:
        proc = run(reg, tmp_path / "out", through(proxy, moto_server, clean_env), "--cache_dir", url)
    finally:
        proxy.stop()
    assert proc.returncode == 0, proc.stderr
    assert set(served_by(proc.stdout).values()) == {f"cache-s3 {url}"}
    retries = [e for e in events(proc.stdout) if e["$type"] == "model_file_download_retry"]
    assert [(e["model_file"], e["attempt"], e["num_attempts"]) for e in retries] == [("w.bin", 2, 3), ("w.bin", 3, 3)]
    assert all(f"S3 SlowDown (cache-s3 {url})" == e["message"] and e["delay"] >= 1 for e in retries), retries
    # Three GETs in all (two refused, one served): the GET client itself makes no retry of its own.
    assert requests_for(proxy, "GET", data["w.bin"]) == [503, 503, 200]
    assert origin_gets(origin) == 0
    assert (tmp_path / "out" / "public" / "m" / "w.bin").read_bytes() == data["w.bin"]


def test_a_bucket_that_keeps_failing_falls_through_to_the_origin_with_one_line(
        tmp_path, origin, moto_server, filled, bucket, clean_env):
    reg, data, url = filled
    proxy = SlowDownProxy(moto_server.port, fail_first=100, match=digest(data["w.bin"])[2:])
    try:
        proc = run(reg, tmp_path / "out", through(proxy, moto_server, clean_env), "--cache_dir", url,
                   "--num_attempts", "2")
    finally:
        proxy.stop()
    assert proc.returncode == 0, proc.stderr
    assert served_by(proc.stdout) == {"w.bin": "original", "net.txt": f"cache-s3 {url}"}
    assert requests_for(proxy, "GET", data["w.bin"]) == [503, 503]  # --num_attempts, not squared
    assert origin_gets(origin) == 1
    notes = [e["message"] for e in events(proc.stdout) if e["$type"].endswith("_note")]
    assert len(notes) == 1 and f"cache-s3 {url} failed, trying the next source" in notes[0], notes
    assert "SlowDown" in notes[0] and "gave up after 2 attempts" in notes[0]
    # The object was throttled, not damaged: it is left in place, not reported as unverified.
    assert moto_server.client().get_object(Bucket=bucket, Key=key("ci", data["w.bin"]))["Body"].read() \
        == data["w.bin"]


def test_slow_down_on_a_lookup_is_retried_by_botocore_within_num_attempts(
        tmp_path, origin, moto_server, filled, clean_env):
    reg, data, url = filled
    proxy = SlowDownProxy(moto_server.port, fail_first=1, methods=("HEAD",))
    try:
        proc = run(reg, tmp_path / "out", through(proxy, moto_server, clean_env), "--cache_dir", url)
    finally:
        proxy.stop()
    assert proc.returncode == 0, proc.stderr
    assert set(served_by(proc.stdout).values()) == {f"cache-s3 {url}"}
    for blob in data.values():
        assert requests_for(proxy, "HEAD", blob) == [503, 200]
    assert origin_gets(origin) == 0


def test_a_lookup_that_keeps_failing_is_one_line_and_the_origin_serves(
        tmp_path, origin, moto_server, filled, clean_env):
    reg, data, url = filled
    proxy = SlowDownProxy(moto_server.port, fail_first=100, methods=("HEAD",))
    try:
        proc = run(reg, tmp_path / "out", through(proxy, moto_server, clean_env), "--cache_dir", url,
                   "--num_attempts", "2", "--progress_format", "text")
    finally:
        proxy.stop()
    assert proc.returncode == 0, proc.stderr
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if url in line]
    assert len(said) == 1 and "kept answering 503 (throttled or failing)" in said[0], said
    assert "after 2 attempts" in said[0]
    # botocore's 2 attempts for the first file's HEAD; then the tier is passed over for the run.
    assert sorted(len(requests_for(proxy, "HEAD", blob)) for blob in data.values()) == [0, 2]
    assert origin_gets(origin) == 2
