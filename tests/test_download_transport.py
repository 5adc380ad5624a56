"""Transport details: Retry-After forms, backoff bounds, and proxies from the environment."""

from __future__ import annotations

import email.utils
import os
import time

from helpers_http import one_model, run_downloader, server  # noqa: F401
from omz_tools.download.transport import backoff_delay, parse_retry_after


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    in_a_while = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(in_a_while) <= 31
    assert parse_retry_after("100000") == 120.0  # capped: a server cannot park the run for a day


def test_backoff_grows_with_jitter_and_honours_retry_after():
    for attempt in range(6):
        delay = backoff_delay(attempt)
        assert 0 <= delay <= min(30.0, 0.5 * 2 ** attempt)
    assert backoff_delay(0, retry_after=5.0) >= 5.0


def test_http_proxy_from_the_environment_is_used(tmp_path, server):
    # The registry's host does not exist; only the proxy named by HTTP_PROXY can answer.
    data = os.urandom(5000)
    url = "http://files.example.invalid/m1/w.bin"
    server.add(url, data)  # a proxy receives the absolute URL as the request path
    reg, out = one_model(tmp_path, server, {"w.bin": {"data": data, "source": url}})
    env = dict(os.environ, HTTP_PROXY=server.url(""), http_proxy=server.url(""), NO_PROXY="", no_proxy="")
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (out / "public" / "m1" / "w.bin").read_bytes() == data
    assert server.log[-1].path == url


def test_html_sniffing_looks_at_the_body_not_only_the_header():
    from omz_tools.download.verify import looks_like_html
    assert looks_like_html(b"\n  <!DOCTYPE html><html>")
    assert looks_like_html(b"<div>quota</div><html>")
    assert looks_like_html(b"<p>Sign in</p>", "text/html; charset=utf-8")
    assert not looks_like_html(b"name: \"SE-ResNet-101\"\nlayer {", "text/html")  # a mislabelled prototxt
    assert not looks_like_html(b"<?xml version=\"1.0\"?>\n<net name=\"x\">", "text/html")  # an IR .xml
    assert not looks_like_html(b"\x08\x01\x12\x00binary weights")


def test_connection_refused_is_said_in_a_few_words(tmp_path, server):
    import socket

    with socket.socket() as probe:  # a port that nobody listens on once this is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/m1/w.bin"
    reg, out = one_model(tmp_path, server, {"w.bin": {"data": b"x" * 10, "source": url}})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "1")
    assert proc.returncode == 1
    assert f"cannot connect to {url} (Connection refused); gave up after 1 attempt. Check the network" in proc.stderr
    assert "HTTPConnection(" not in proc.stderr and "Errno" not in proc.stderr and '")' not in proc.stderr
