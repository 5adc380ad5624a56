"""Faults injected by a real loopback server: resume, retries, restarts, refusals, mismatches."""

from __future__ import annotations

import os

import pytest

from helpers_http import Fault, events, one_model, run_downloader, server, sha256  # noqa: F401

MiB = 1 << 20


@pytest.fixture
def blob():
    return os.urandom(3 * MiB + 12345)


def _target(out, name="m.bin", model="m1"):
    return out / "public" / model / name


def test_connection_dropped_resumes_within_the_run(tmp_path, server, blob):
    reg, out = one_model(tmp_path, server, {"m.bin": blob})
    server.queue_fault("/m1/m.bin", Fault("drop", after=2 * MiB + 100))
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--progress_format", "json")
    assert proc.returncode == 0, proc.stderr
    assert _target(out).read_bytes() == blob
    reqs = server.requests_for("/m1/m.bin")
    assert [r.status for r in reqs] == [200, 206]
    assert reqs[1].headers["Range"] == f"bytes={2 * MiB + 100}-"  # every byte that arrived is kept
    assert reqs[1].headers["If-Range"] == server.resources["/m1/m.bin"].etag
    types = [e["$type"] for e in events(proc.stdout)]
    assert "model_file_download_retry" in types and "model_file_download_resume" in types
    assert not list(_target(out).parent.glob("*.part*"))


def test_big_file_dropped_after_a_flush_resumes_and_verifies(tmp_path, server):
    """Past SYNC_EVERY the writer flushes on a thread of its own, before and after the resume."""
    from omz_tools.download.verify import StreamWriter
    big = os.urandom(3 * StreamWriter.SYNC_EVERY + 5 * MiB)
    cut = StreamWriter.SYNC_EVERY + 3 * MiB + 7
    reg, out = one_model(tmp_path, server, {"m.bin": big})
    server.queue_fault("/m1/m.bin", Fault("drop", after=cut))
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert sha256(_target(out).read_bytes()) == sha256(big)
    reqs = server.requests_for("/m1/m.bin")
    assert [r.status for r in reqs] == [200, 206] and reqs[1].headers["Range"] == f"bytes={cut}-"
    assert not list(_target(out).parent.glob("*.part*"))


def test_connection_dropped_resumes_across_runs(tmp_path, server, blob):
    reg, out = one_model(tmp_path, server, {"m.bin": blob})
    server.queue_fault("/m1/m.bin", Fault("drop", after=MiB + 10))
    first = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "1")
    assert first.returncode == 1
    assert "FAILED:" in first.stderr and "m1:" in first.stderr and "Kept m.bin.part" in first.stderr
    assert not _target(out).exists()
    part = _target(out).with_name("m.bin.part")
    assert part.stat().st_size == MiB + 10
    second = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert second.returncode == 0, second.stderr
    assert _target(out).read_bytes() == blob
    last = server.requests_for("/m1/m.bin")[-1]
    assert last.headers["Range"] == f"bytes={MiB + 10}-" and last.status == 206
    assert not part.exists()


def test_503_with_retry_after_then_200(tmp_path, server, blob):
    reg, out = one_model(tmp_path, server, {"m.bin": blob})
    server.queue_fault("/m1/m.bin", Fault("status", status=503, retry_after="1"))
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--progress_format", "json")
    assert proc.returncode == 0, proc.stderr
    retries = [e for e in events(proc.stdout) if e["$type"] == "model_file_download_retry"]
    assert len(retries) == 1 and retries[0]["delay"] >= 1.0 and "503" in retries[0]["message"]
    assert [r.status for r in server.requests_for("/m1/m.bin")] == [503, 200]
    assert _target(out).read_bytes() == blob


def test_429_and_5xx_give_up_after_num_attempts(tmp_path, server, blob):
    reg, out = one_model(tmp_path, server, {"m.bin": blob})
    server.queue_fault("/m1/m.bin", Fault("status", status=429, retry_after="0"), times=2)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "2")
    assert proc.returncode == 1
    assert "HTTP 429" in proc.stderr and "gave up after 2 attempts" in proc.stderr
    assert len(server.requests_for("/m1/m.bin")) == 2
    assert not _target(out).exists()


def test_404_is_not_retried_and_says_why(tmp_path, server):
    data = b"x" * 1000
    reg, out = one_model(tmp_path, server, {"m.bin": {"data": data, "source": server.url("/gone.bin")}})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "3")
    assert proc.returncode == 1
    assert len(server.requests_for("/gone.bin")) == 1
    assert "HTTP 404" in proc.stderr and server.url("/gone.bin") in proc.stderr
    assert "FAILED:\nm1: m.bin: HTTP 404 Not Found (" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_200_answering_a_range_request_restarts_cleanly(tmp_path, server, blob):
    reg, out = one_model(tmp_path, server, {"m.bin": blob})
    server.resources["/m1/m.bin"].honour_range = False
    server.queue_fault("/m1/m.bin", Fault("drop", after=MiB + 5))
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0, proc.stderr
    reqs = server.requests_for("/m1/m.bin")
    assert [r.status for r in reqs] == [200, 200] and "Range" in reqs[1].headers
    assert "starting over" in proc.stderr
    assert _target(out).read_bytes() == blob


def test_changed_etag_makes_if_range_send_the_whole_file(tmp_path, server, blob):
    reg, out = one_model(tmp_path, server, {"m.bin": blob})
    server.queue_fault("/m1/m.bin", Fault("drop", after=MiB + 5))
    assert run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "1").returncode == 1
    server.resources["/m1/m.bin"].etag = '"changed"'
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0, proc.stderr
    last = server.requests_for("/m1/m.bin")[-1]
    assert last.headers["If-Range"] != '"changed"' and last.status == 200
    assert _target(out).read_bytes() == blob


def test_wrong_content_range_is_discarded_and_restarted(tmp_path, server, blob):
    reg, out = one_model(tmp_path, server, {"m.bin": blob})
    server.resources["/m1/m.bin"].wrong_content_range = True
    server.queue_fault("/m1/m.bin", Fault("drop", after=MiB + 5))
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "4")
    assert proc.returncode == 0, proc.stderr
    statuses = [(r.status, "Range" in r.headers) for r in server.requests_for("/m1/m.bin")]
    assert statuses == [(200, False), (206, True), (200, False)]  # bad 206 refused, then from 0
    assert "Content-Range" in proc.stderr
    assert _target(out).read_bytes() == blob


def test_body_longer_than_the_registry_says_is_refused(tmp_path, server, blob):
    reg, out = one_model(tmp_path, server, {"m.bin": {"data": blob[:-100], "source": server.add("/long", blob)}})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 1
    assert f"expected {len(blob) - 100} bytes" in proc.stderr and f"got {len(blob)} bytes" in proc.stderr
    assert "Content-Length" in proc.stderr
    assert len(server.requests_for("/long")) == 1  # permanent: not retried
    assert not _target(out).exists() and not list(_target(out).parent.glob("*.part*"))


def test_body_without_content_length_longer_than_declared_is_cut_off(tmp_path, server, blob):
    reg, out = one_model(tmp_path, server, {"m.bin": {"data": blob[:2 * MiB],
                                                      "source": server.add("/nolen", blob, content_length=False)}})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 1
    assert "longer than the registry" in proc.stderr and "deleted the partial file for safety" in proc.stderr
    assert not _target(out).exists() and not list(_target(out).parent.glob("*.part*"))


def test_short_body_then_eof_is_resumed(tmp_path, server, blob):
    reg, out = one_model(tmp_path, server, {"m.bin": blob})
    server.queue_fault("/m1/m.bin", Fault("drop", after=MiB // 2))
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert _target(out).read_bytes() == blob


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_instead_of_the_file_is_an_error_that_says_so(tmp_path, server, content_type):
    page = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>login</body></html>"
    real = os.urandom(len(page))  # same size: only the HTML sniffing can tell
    reg, out = one_model(tmp_path, server, {"m.bin": {"data": real, "source": server.add(
        "/page", page, content_type=content_type)}})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--progress_format", "json")
    assert proc.returncode == 1
    errors = [e for e in events(proc.stdout) if e["$type"] == "model_file_download_error"]
    assert errors and "HTML page instead of the file" in errors[0]["message"]
    assert server.url("/page") in errors[0]["message"]
    summary = events(proc.stdout)[-1]
    assert summary["$type"] == "download_summary" and summary["failed"][0]["model"] == "m1"
    assert not _target(out).exists()


def test_hash_mismatch_leaves_nothing_at_the_final_path(tmp_path, server, blob):
    wrong = bytearray(blob)
    wrong[-1] ^= 0xFF
    reg, out = one_model(tmp_path, server, {"m.bin": {"data": blob, "source": server.add("/bad", bytes(wrong))}})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 1
    message = proc.stderr
    assert sha256(blob) in message and sha256(bytes(wrong)) in message
    assert f"expected {len(blob)} bytes" in message and "Deleted the downloaded data for safety" in message
    assert not _target(out).exists() and not list(_target(out).parent.glob("*.part*"))
    assert len(server.requests_for("/bad")) == 1  # a fresh full download that mismatches is not retried


def test_wrong_file_already_at_the_final_path_is_replaced(tmp_path, server, blob):
    reg, out = one_model(tmp_path, server, {"m.bin": blob})
    _target(out).parent.mkdir(parents=True)
    _target(out).write_bytes(b"truncated by some other tool")
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "not the expected file" in proc.stderr
    assert _target(out).read_bytes() == blob


def test_unreachable_server_is_a_transient_error_with_advice(tmp_path, server):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    data = b"abc"
    reg, out = one_model(tmp_path, server, {"m.bin": {"data": data, "source": f"http://127.0.0.1:{port}/x"}})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "2")
    assert proc.returncode == 1
    assert "cannot connect" in proc.stderr and "gave up after 2 attempts" in proc.stderr
