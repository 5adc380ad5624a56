"""--cache_dir s3://BUCKET/PREFIX against a real S3 endpoint on 127.0.0.1 (moto's standalone server,
tests/helpers_s3.py), through boto3, with the origin a loopback nginx counting its transfers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers_cache import digest, downloader, downloader_popen, events, serve, served_by, write_model
from helpers_nginx import nginx_factory, nginx_mirror  # noqa: F401
from helpers_s3 import SECRET, MotoServer, moto_server, bucket  # noqa: F401

KiB = 1024
pytestmark = pytest.mark.native


@pytest.fixture
def origin(nginx_mirror):
    return nginx_mirror


def model(tmp_path, server, name="m", big=700 * KiB) -> tuple:
    data = {"w.bin": os.urandom(big), "net.txt": b"layers\n" * 50}
    for file, blob in data.items():
        serve(server.root, f"files/{name}/{file}", blob)
    reg = write_model(tmp_path / "reg", name, {f: (b, f"{server.url}/files/{name}/{f}") for f, b in data.items()})
    return reg, data


def key(prefix: str, blob: bytes) -> str:
    value = digest(blob)
    return f"{prefix}/sha256/{value[:2]}/{value[2:]}"


def origin_gets(server) -> int:
    return len(server.transfers())


def run(reg, out, env, *extra):
    return downloader("--registry", reg, "--name", "m", "-o", out, "--progress_format", "json", *extra, env=env)


def test_cold_fill_then_warm_hits_from_the_bucket(tmp_path, origin, moto_server, bucket, clean_env):
    reg, data = model(tmp_path, origin)
    env = moto_server.env(clean_env)
    url = f"s3://{bucket}/omz"
    first = run(reg, tmp_path / "out1", env, "--cache_dir", url)
    assert first.returncode == 0, first.stderr
    assert set(served_by(first.stdout).values()) == {"original"} and origin_gets(origin) == 2
    assert moto_server.keys(bucket) == sorted(key("omz", blob) for blob in data.values())  # no staging left
    # N runners in parallel, each with its own output folder: all from the bucket, none from the origin.
    procs = [downloader_popen("--registry", reg, "--name", "m", "-o", tmp_path / f"r{i}", "--cache_dir", url,
                              "--progress_format", "json", env=env) for i in range(3)]
    for proc in procs:
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        ends = [e for e in events(out) if e["$type"] == "model_file_download_end"]
        assert {(e["source"], e["cache"]) for e in ends} == {("cache-s3", url)}
        assert SECRET not in out + err
    assert origin_gets(origin) == 2  # one origin transfer per file, in all
    for i in range(3):
        for file, blob in data.items():
            assert (tmp_path / f"r{i}" / "public" / "m" / file).read_bytes() == blob


def test_folder_cache_in_front_of_the_bucket(tmp_path, origin, moto_server, bucket, clean_env):
    reg, data = model(tmp_path, origin)
    env = moto_server.env(clean_env)
    url = f"s3://{bucket}"
    assert run(reg, tmp_path / "out1", env, "--cache_dir", url).returncode == 0
    both = run(reg, tmp_path / "out2", env, "--cache_dir", tmp_path / "cache", "--cache_dir", url)
    assert both.returncode == 0, both.stderr
    assert set(served_by(both.stdout).values()) == {f"cache-s3 {url}"}
    third = run(reg, tmp_path / "out3", env, "--cache_dir", tmp_path / "cache", "--cache_dir", url)
    assert set(served_by(third.stdout).values()) == {f"cache {tmp_path / 'cache'}"}
    assert origin_gets(origin) == 2


def test_corrupted_object_is_reported_skipped_and_repaired(tmp_path, origin, moto_server, bucket, clean_env):
    reg, data = model(tmp_path, origin)
    env = moto_server.env(clean_env)
    url = f"s3://{bucket}/p"
    blob = data["w.bin"]
    bad = bytearray(blob)
    bad[1000] ^= 0xFF
    client = moto_server.client()
    client.put_object(Bucket=bucket, Key=key("p", blob), Body=bytes(bad))  # same size, one bit off
    client.put_object(Bucket=bucket, Key=key("p", data["net.txt"]), Body=data["net.txt"][:-10])  # truncated
    plain = run(reg, tmp_path / "out1", env, "--cache_dir", url)
    assert plain.returncode == 0, plain.stderr
    notes = [e["message"] for e in events(plain.stdout) if e["$type"] == "model_file_download_note"]
    assert any(f"got {len(blob)} bytes with sha256 {digest(bytes(bad))}" in n for n in notes), notes
    assert any(f"got {len(data['net.txt']) - 10} bytes" in n for n in notes), notes
    assert sum("--cache_repair" in n for n in notes) == 2, notes
    assert set(served_by(plain.stdout).values()) == {"original"}
    assert client.get_object(Bucket=bucket, Key=key("p", blob))["Body"].read() == bytes(bad)  # left as it was
    repaired = run(reg, tmp_path / "out2", env, "--cache_dir", url, "--cache_repair")
    assert repaired.returncode == 0, repaired.stderr
    for blob in data.values():
        assert client.get_object(Bucket=bucket, Key=key("p", blob))["Body"].read() == blob
    warm = run(reg, tmp_path / "out3", env, "--cache_dir", url)
    assert set(served_by(warm.stdout).values()) == {f"cache-s3 {url}"}
    assert (tmp_path / "out3" / "public" / "m" / "w.bin").read_bytes() == data["w.bin"]


def test_endpoint_down_falls_back_to_the_origin_with_one_line(tmp_path, origin, moto_server, clean_env):
    reg, data = model(tmp_path, origin)
    env = dict(moto_server.env(clean_env), AWS_ENDPOINT_URL="http://127.0.0.1:9")  # nothing listens there
    proc = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out", "--cache_dir", "s3://b/p",
                      "--num_attempts", "1", env=env)
    assert proc.returncode == 0, proc.stderr
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if "s3://b/p" in line]
    assert len(said) == 1 and "could not be reached at http://127.0.0.1:9" in said[0], said
    assert "next source" in said[0] and "Traceback" not in proc.stderr
    assert origin_gets(origin) == 2


def test_wrong_credentials_are_one_clear_message_and_no_secret_is_printed(tmp_path, origin, clean_env):
    from helpers_s3 import _require
    _require()
    server = MotoServer(tmp_path, auth=True)  # refuses any key its IAM does not know
    try:
        reg, data = model(tmp_path, origin)
        proc = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out", "--cache_dir", "s3://b",
                          env=server.env(clean_env))
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if "s3://b" in line]
    assert len(said) == 1 and "refused our credentials" in said[0] and "AWS_PROFILE" in said[0], said
    assert SECRET not in proc.stdout + proc.stderr
    assert SECRET not in (tmp_path / f"moto-{server.port}.log").read_text()  # nor in what the server logged
    assert origin_gets(origin) == 2


def test_bucket_that_does_not_exist(tmp_path, origin, moto_server, clean_env):
    reg, data = model(tmp_path, origin)
    proc = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out", "--cache_dir", "s3://no-such-bucket/x",
                      env=moto_server.env(clean_env))
    assert proc.returncode == 0, proc.stderr
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if "no-such-bucket" in line]
    assert len(said) == 1 and "the bucket 'no-such-bucket' does not exist" in said[0], said
    assert origin_gets(origin) == 2


def test_offline_reads_the_bucket_and_says_what_is_missing(tmp_path, origin, moto_server, bucket, clean_env):
    reg, data = model(tmp_path, origin)
    env = moto_server.env(clean_env)
    url = f"s3://{bucket}/p"
    assert run(reg, tmp_path / "out1", env, "--cache_dir", url).returncode == 0
    offline = run(reg, tmp_path / "out2", env, "--cache_dir", url, "--offline")
    assert offline.returncode == 0, offline.stderr
    assert set(served_by(offline.stdout).values()) == {f"cache-s3 {url}"}
    moto_server.client().delete_object(Bucket=bucket, Key=key("p", data["w.bin"]))
    missing = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out3", "--cache_dir", url,
                         "--offline", env=env)
    assert missing.returncode == 1
    assert "not available offline" in missing.stdout + missing.stderr and url in missing.stdout + missing.stderr
    assert origin_gets(origin) == 2


def test_dry_run_says_which_files_the_bucket_holds(tmp_path, origin, moto_server, bucket, clean_env):
    reg, data = model(tmp_path, origin)
    env = moto_server.env(clean_env)
    url = f"s3://{bucket}/p"
    assert run(reg, tmp_path / "out1", env, "--cache_dir", url).returncode == 0
    moto_server.client().delete_object(Bucket=bucket, Key=key("p", data["net.txt"]))
    plan = run(reg, tmp_path / "out2", env, "--cache_dir", url, "--dry_run")
    assert plan.returncode == 0, plan.stderr
    rows = {e["model_file"]: e for e in events(plan.stdout) if e["$type"] == "download_plan_file"}
    assert rows["w.bin"]["state"] == "cache" and rows["w.bin"]["from"][0].startswith(f"cache-s3 {url}")
    assert rows["net.txt"]["state"] == "fetch" and all("cache-s3" not in f for f in rows["net.txt"]["from"])
    assert not (tmp_path / "out2").exists() and origin_gets(origin) == 2


def test_without_boto3_one_message_and_the_downloader_never_imports_it(tmp_path, origin, clean_env):
    reg, data = model(tmp_path, origin)
    blocked = ("import sys; sys.modules['boto3'] = None; sys.argv = ['omz-downloader'] + sys.argv[1:]; "
               "from omz_tools.cli.downloader import main; main()")
    proc = subprocess.run([sys.executable, "-c", blocked, "--registry", str(reg), "--name", "m",
                           "-o", str(tmp_path / "out"), "--cache_dir", "s3://b/p"],
                          capture_output=True, text=True, env=clean_env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "pip install 'omz-model-tools[s3]'" in proc.stderr, proc.stderr
    folder_only = ("import sys, omz_tools; r = omz_tools.download('m', sys.argv[2], registries=[sys.argv[1]], "
                   "cache_dir=sys.argv[3]); assert r.ok; "
                   "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))")
    proc = subprocess.run([sys.executable, "-c", folder_only, str(reg), str(tmp_path / "out"),
                           str(tmp_path / "cache")], capture_output=True, text=True,
                          env=dict(clean_env, NO_PROXY="127.0.0.1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_kill_9_during_upload_leaves_no_object_under_the_final_key(tmp_path, origin, moto_server, bucket,
                                                                  clean_env):
    import signal
    import time
    reg, data = model(tmp_path, origin, big=48 << 20)  # one PUT of 48 MiB: about a second into moto
    env = moto_server.env(clean_env)
    url = f"s3://{bucket}/p"
    client = moto_server.client()
    target = tmp_path / "out" / "public" / "m" / "w.bin"
    proc = downloader_popen("--registry", reg, "--name", "m", "-o", tmp_path / "out", "-j", "1",
                            "--cache_dir", url, env=env)
    read_at_commit, caught = None, None

    def read_so_far() -> int:  # bytes the downloader has read from files and sockets
        with open(f"/proc/{proc.pid}/io") as stream:
            return int(next(line for line in stream if line.startswith("rchar:")).split()[1])
    while proc.poll() is None:
        try:
            if read_at_commit is None and target.exists():  # verified and renamed: the upload follows
                read_at_commit = read_so_far()
            elif read_at_commit is not None and read_so_far() - read_at_commit > (8 << 20):
                proc.send_signal(signal.SIGKILL)  # the PUT's body is being read and sent
                caught = read_so_far() - read_at_commit
                break
        except (OSError, StopIteration):
            break
        time.sleep(0.002)
    proc.communicate()
    assert caught is not None and caught < (48 << 20), "the upload was not caught in progress"
    final = key("p", data["w.bin"])
    assert final not in moto_server.keys(bucket)
    assert target.read_bytes() == data["w.bin"]  # verified before any upload began
    again = run(reg, tmp_path / "out2", env, "--cache_dir", url)  # another runner fills the bucket
    assert again.returncode == 0, again.stderr
    assert client.get_object(Bucket=bucket, Key=final)["Body"].read() == data["w.bin"]
    assert not [k for k in moto_server.keys(bucket) if "/staging/" in k]


def test_object_deleted_mid_read_is_still_verified_or_falls_through(tmp_path, origin, moto_server, bucket,
                                                                     clean_env, monkeypatch):
    import omz_tools
    from omz_tools.download.progress import Reporter

    reg, data = model(tmp_path, origin, big=8 << 20)
    url = f"s3://{bucket}/p"
    for name, value in dict(moto_server.env(clean_env), NO_PROXY="127.0.0.1").items():
        monkeypatch.setenv(name, value)
    for name in [n for n in os.environ if n.startswith("AWS_") and n not in moto_server.env({})]:
        monkeypatch.delenv(name)
    assert omz_tools.download("m", tmp_path / "out1", registries=[reg], cache_dir=url).ok
    client = moto_server.client()
    deleted = []

    class DeleteWhileReading(Reporter):
        def file_transfer(self, model, file, size, offset, where):
            if where.startswith("s3://") and file == "w.bin":  # the GET has been answered
                client.delete_object(Bucket=bucket, Key=key("p", data["w.bin"]))
                deleted.append(where)

    result = omz_tools.download("m", tmp_path / "out2", registries=[reg], cache_dir=url,
                                progress=DeleteWhileReading())
    assert result.ok and deleted
    assert (tmp_path / "out2" / "public" / "m" / "w.bin").read_bytes() == data["w.bin"]
    # moto had answered the GET with the whole object: the bytes read are the object's, verified.
    assert {o.task.name: o.served_by for o in result.files} == {"w.bin": f"cache-s3 {url}",
                                                                "net.txt": f"cache-s3 {url}"}
    # Deleted between the lookup (HEAD) and the GET: the tier says it is gone; the Fetcher tries
    # the next source, and the next runner puts the file back.
    from omz_tools.download.errors import PermanentError
    from omz_tools.download.options import NetLimits
    from omz_tools.download.s3cache import S3Tier, source_for
    from omz_tools.registry import resolve
    model_file = next(f for f in resolve("m", registries=[reg])[0].files if str(f.name) == "w.bin")
    with pytest.raises(PermanentError, match="is gone"):
        S3Tier(url, limits=NetLimits()).open(source_for(url, model_file))
    third = omz_tools.download("m", tmp_path / "out3", registries=[reg], cache_dir=url)
    assert {o.task.name: o.served_by for o in third.files}["w.bin"] == "original"
    assert client.get_object(Bucket=bucket, Key=key("p", data["w.bin"]))["Body"].read() == data["w.bin"]


def test_runners_filling_the_bucket_at_once_leave_only_verified_objects(tmp_path, origin, moto_server, bucket,
                                                                       clean_env):
    reg, data = model(tmp_path, origin, big=3 << 20)
    env = moto_server.env(clean_env)
    url = f"s3://{bucket}/p"
    procs = [downloader_popen("--registry", reg, "--name", "m", "-o", tmp_path / f"r{i}", "--cache_dir", url,
                              env=env) for i in range(3)]
    for proc in procs:
        out, err = proc.communicate()
        assert proc.returncode == 0, out + err
    client = moto_server.client()
    assert moto_server.keys(bucket) == sorted(key("p", blob) for blob in data.values())  # no staging left
    for blob in data.values():
        assert client.get_object(Bucket=bucket, Key=key("p", blob))["Body"].read() == blob


def test_a_kept_part_continues_with_a_range_request_and_the_objects_etag(tmp_path, origin, moto_server, bucket,
                                                                         clean_env, monkeypatch):
    from omz_tools.download.errors import RestartError
    from omz_tools.download.options import NetLimits
    from omz_tools.download.s3cache import S3Tier, source_for
    from omz_tools.registry import resolve

    reg, data = model(tmp_path, origin)
    for name, value in moto_server.env(clean_env).items():
        monkeypatch.setenv(name, value)
    url = f"s3://{bucket}/p"
    blob = data["w.bin"]
    client = moto_server.client()
    client.put_object(Bucket=bucket, Key=key("p", blob), Body=blob)
    etag = client.head_object(Bucket=bucket, Key=key("p", blob))["ETag"]
    model_file = next(f for f in resolve("m", registries=[reg])[0].files if str(f.name) == "w.bin")
    tier = S3Tier(url, limits=NetLimits())
    opened = tier.open(source_for(url, model_file), 1000, etag)
    try:
        assert (opened.offset, opened.total, opened.validator) == (1000, len(blob), etag)
        assert opened.response.raw.read() == blob[1000:]
    finally:
        opened.response.close()
    with pytest.raises(RestartError, match="changed since the partial file was kept"):
        tier.open(source_for(url, model_file), 1000, '"0123456789abcdef0123456789abcdef"')


def omz_cache(*args, env):
    from helpers_cache import offline_env
    return subprocess.run([sys.executable, "-m", "omz_tools.cli.cache", *map(str, args)], capture_output=True,
                          text=True, env=offline_env(env))


def test_publish_a_folder_then_an_air_gapped_runner_reads_the_bucket(tmp_path, origin, moto_server, bucket,
                                                                    clean_env):
    reg, data = model(tmp_path, origin)
    env = moto_server.env(clean_env)
    url = f"s3://{bucket}/fleet"
    assert run(reg, tmp_path / "downloaded", clean_env).returncode == 0  # no cache: a plain download
    (tmp_path / "downloaded" / "public" / "m" / "net.txt").write_bytes(b"changed locally\n")
    proc = omz_cache("publish", "--registry", reg, "--name", "m", "-o", tmp_path / "downloaded", url, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Published: 1, already in the bucket: 0, not there: 1, failed: 0." in proc.stdout
    assert moto_server.keys(bucket) == [key("fleet", data["w.bin"])]  # the changed file was not published
    again = omz_cache("publish", "--registry", reg, "--name", "m", "-o", tmp_path / "downloaded", url, env=env)
    assert "Published: 0, already in the bucket: 1" in again.stdout
    offline = run(reg, tmp_path / "gapped", env, "--cache_dir", url, "--offline")
    assert served_by(offline.stdout) == {"w.bin": f"cache-s3 {url}"} and offline.returncode == 1


def test_verify_reads_every_object_and_removes_the_damaged_ones(tmp_path, origin, moto_server, bucket, clean_env):
    reg, data = model(tmp_path, origin)
    env = moto_server.env(clean_env)
    url = f"s3://{bucket}/p"
    assert run(reg, tmp_path / "out", env, "--cache_dir", url).returncode == 0
    good = omz_cache("verify", "--registry", reg, "--name", "m", url, env=env)
    assert good.returncode == 0 and "Verified: 2, already in the bucket: 0, not there: 0, failed: 0." in good.stdout
    client = moto_server.client()
    client.put_object(Bucket=bucket, Key=key("p", data["net.txt"]), Body=b"x" * len(data["net.txt"]))
    bad = omz_cache("verify", "--registry", reg, "--name", "m", url, env=env)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "m/net.txt: the object" in bad.stderr and "is damaged" in bad.stderr and "left it" in bad.stderr
    removed = omz_cache("verify", "--registry", reg, "--name", "m", "--remove_damaged", url, env=env)
    assert removed.returncode == 1 and "removed it" in removed.stderr
    assert moto_server.keys(bucket) == [key("p", data["w.bin"])]
    missing = omz_cache("verify", "--registry", reg, "--name", "m", "s3://no-such-bucket", env=env)
    assert missing.returncode == 1 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    assert SECRET not in good.stdout + good.stderr + bad.stdout + bad.stderr + missing.stderr


def test_verify_stops_reading_an_object_longer_than_its_file(tmp_path, moto_server, bucket, clean_env, monkeypatch):
    # In-process (click's CliRunner), so the bytes read from the object's body can be counted.
    import botocore.response
    from click.testing import CliRunner

    from omz_tools.cli.cache import cli
    blob = os.urandom(1536 * KiB)
    reg = write_model(tmp_path / "reg", "m", {"w.bin": (blob, "http://127.0.0.1:9/files/m/w.bin")})
    moto_server.client().put_object(Bucket=bucket, Key=key("p", blob), Body=blob + os.urandom(5 << 20))
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in moto_server.env({}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    chunks = []
    iter_chunks = botocore.response.StreamingBody.iter_chunks

    def counted(body, *args, **kwargs):
        for chunk in iter_chunks(body, *args, **kwargs):
            chunks.append(len(chunk))
            yield chunk
    monkeypatch.setattr(botocore.response.StreamingBody, "iter_chunks", counted)
    result = CliRunner().invoke(cli, ["verify", "--registry", str(reg), "--name", "m", f"s3://{bucket}/p"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert (f"m/w.bin: the object s3://{bucket}/{key('p', blob)} is damaged: expected {len(blob)} bytes "
            f"with sha256 {digest(blob)}, found more than {len(blob)} bytes; left it") in result.output
    assert "Verified: 0, already in the bucket: 0, not there: 0, failed: 1." in result.output
    assert 0 < sum(chunks) <= len(blob) + (1 << 20), chunks  # not the 5 MiB past the file's size
    assert SECRET not in result.output


def test_a_get_broken_mid_body_is_retried_and_resumed_with_a_range(tmp_path, origin, moto_server, bucket,
                                                                  clean_env):
    from helpers_s3 import CuttingProxy
    reg, data = model(tmp_path, origin, big=2 << 20)
    url = f"s3://{bucket}/p"
    assert run(reg, tmp_path / "out1", moto_server.env(clean_env), "--cache_dir", url).returncode == 0
    proxy = CuttingProxy(moto_server.port, cut_after=700 * KiB)
    try:
        env = dict(moto_server.env(clean_env), AWS_ENDPOINT_URL=proxy.url)
        proc = run(reg, tmp_path / "out2", env, "--cache_dir", url)
    finally:
        proxy.stop()
    assert proc.returncode == 0, proc.stderr
    assert proxy.cut
    retries = [e for e in events(proc.stdout) if e["$type"] == "model_file_download_retry"]
    assert [(e["model_file"], e["attempt"]) for e in retries] == [("w.bin", 2)], retries
    assert f"of {len(data['w.bin'])} bytes" in retries[0]["message"]  # cut short, said as for HTTP
    assert set(served_by(proc.stdout).values()) == {f"cache-s3 {url}"}
    sent = proxy.requests.decode("latin-1").lower()
    assert "range: bytes=" in sent and "if-match: " in sent  # resumed from the kept .part
    assert (tmp_path / "out2" / "public" / "m" / "w.bin").read_bytes() == data["w.bin"]
    assert origin_gets(origin) == 2
