"""Hostile or broken servers on 127.0.0.1: endless pages, trickles, resets, odd redirects and
headers. Each ends in a verified file or one clear message, in bounded memory and time."""

from __future__ import annotations

import gzip
import os
import socket
import threading
import time

import pytest

from helpers_http import Fault, events, one_model, run_downloader, server, sha256, write_registry  # noqa: F401

KiB = 1024
MiB = 1 << 20
GUARD = 600  # seconds: a generous guard for each child process (never a performance limit)


class RawServer:
    """A bare TCP server on 127.0.0.1: ``answer(conn, request_head)`` speaks HTTP by hand, so a
    test can reset a connection mid-body, trickle bytes, or stream without end."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list = []
        self.sent: list = []  # bytes of body sent per connection
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            text = head.decode("latin-1")
            self.requests.append(text)
            try:
                self.answer(conn, text, len(self.requests) - 1)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.sock.close()


def _range_start(request: str) -> int:
    for line in request.split("\r\n"):
        if line.lower().startswith("range:"):
            return int(line.split("=")[1].split("-")[0])
    return 0


def _reset(conn) -> None:
    import struct
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    conn.close()


@pytest.fixture
def raw_servers():
    made = []

    def make(answer):
        made.append(RawServer(answer))
        return made[-1]
    yield make
    for s in made:
        s.close()


def _registry(tmp_path, url: str, data: bytes, name: str = "w.bin"):
    reg = tmp_path / "reg"
    write_registry(reg, {"public/m1": {"files": [{"name": name, "data": data, "source": url}]}})
    return reg, tmp_path / "out", tmp_path / "out" / "public" / "m1" / name


def test_resets_after_75_kb_complete_in_a_handful_of_connections(tmp_path, raw_servers):
    """Every connection is reset after ~75 kB: each byte that arrived is kept and resumed from."""
    data = os.urandom(400 * KiB)
    etag = '"e1"'

    def answer(conn, request, index):
        start = _range_start(request)
        status = "206 Partial Content" if start else "200 OK"
        extra = f"Content-Range: bytes {start}-{len(data) - 1}/{len(data)}\r\n" if start else ""
        conn.sendall((f"HTTP/1.1 {status}\r\nContent-Length: {len(data) - start}\r\nETag: {etag}\r\n"
                      f"{extra}\r\n").encode())
        conn.sendall(data[start:start + 75_000])
        time.sleep(0.3)  # the client has read those bytes and waits for more
        _reset(conn)

    srv = raw_servers(answer)
    reg, out, target = _registry(tmp_path, srv.url("/w.bin"), data)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "20",
                          timeout=GUARD)
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() == data
    assert len(srv.requests) <= 7  # 400 kB / 75 kB: 6 connections (a plain reader needs as many)
    starts = [_range_start(r) for r in srv.requests]
    assert starts == sorted(starts) and starts[1] >= 75_000


def test_a_trickling_server_ends_the_attempt_and_keeps_what_arrived(tmp_path, raw_servers):
    """1 byte per second after 50 kB: the minimum rate ends the attempt with a clear message."""
    data = os.urandom(200 * KiB)
    stop = threading.Event()

    def answer(conn, request, index):
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\nETag: \"t\"\r\n\r\n".encode())
        conn.sendall(data[:50_000])
        for i in range(50_000, len(data)):
            if stop.wait(1.0):
                return
            conn.sendall(data[i:i + 1])

    srv = raw_servers(answer)
    reg, out, target = _registry(tmp_path, srv.url("/w.bin"), data)
    try:
        proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "1",
                              "--min_rate", "1K", "--stall_window", "2", timeout=GUARD)
    finally:
        stop.set()
    assert proc.returncode == 1
    assert "arrives too slowly" in proc.stderr and "--min_rate" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    part = target.with_name("w.bin.part")
    assert part.stat().st_size >= 50_000  # what arrived is kept for the next run
    assert part.read_bytes() == data[:part.stat().st_size]
    assert not target.exists()


def test_min_rate_and_timeout_come_from_the_environment_too(tmp_path, raw_servers):
    data = os.urandom(100 * KiB)
    stop = threading.Event()

    def answer(conn, request, index):
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode())
        conn.sendall(data[:10_000])
        stop.wait(60)  # silent: the read timeout ends it

    srv = raw_servers(answer)
    reg, out, target = _registry(tmp_path, srv.url("/w.bin"), data)
    env = dict(os.environ, OMZ_TIMEOUT="5,1")
    try:
        proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "1",
                              env=env, timeout=GUARD)
    finally:
        stop.set()
    assert proc.returncode == 1
    assert "broke after 10000 of 102400 bytes (no data for 1 s; --timeout sets it)" in proc.stderr, proc.stderr
    assert target.with_name("w.bin.part").stat().st_size == 10_000


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1,2,3"])
def test_a_bad_timeout_is_a_usage_error(tmp_path, server, value):
    reg, out = one_model(tmp_path, server, {"a.bin": b"a"})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--timeout", value, timeout=GUARD)
    assert proc.returncode == 2 and "--timeout" in proc.stderr and "Traceback" not in proc.stderr
    assert server.log == []


def test_google_drive_endless_page_is_read_only_a_bounded_prefix(tmp_path, raw_servers):
    sent = [0]

    def answer(conn, request, index):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
                     b"<!DOCTYPE html><html><body>")
        piece = b"<p>" + b"a" * 65536 + b"</p>"
        while sent[0] < 300 * MiB:  # endless, as far as the client is concerned
            conn.sendall(piece)
            sent[0] += len(piece)

    srv = raw_servers(answer)
    data = os.urandom(1000)
    reg = tmp_path / "reg"
    write_registry(reg, {"public/gd": {"files": [{"name": "w.bin", "size": len(data), "sha256": sha256(data),
                                                  "source": {"$type": "google_drive", "id": "F"}}]}})
    proc = run_downloader("--registry", reg, "--name", "gd", "-o", tmp_path / "out", "--num_attempts", "1",
                          env=dict(os.environ, OMZ_GOOGLE_DRIVE_URL=srv.url("/uc")), timeout=GUARD)
    assert proc.returncode == 1
    assert "HTML page instead of the file" in proc.stderr and "Traceback" not in proc.stderr
    assert sent[0] < 32 * MiB  # the client stopped reading (a socket buffer or two), not 300 MiB


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/x", "javascript:alert(1)"])
def test_a_redirect_to_a_non_http_url_is_not_retried(tmp_path, httpserver, location):
    httpserver.expect_request("/w.bin").respond_with_data("", status=302, headers={"Location": location})
    data = b"x" * 100
    reg, out, target = _registry(tmp_path, httpserver.url_for("/w.bin"), data)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "3",
                          timeout=GUARD)
    assert proc.returncode == 1
    assert len(httpserver.log) == 1  # not retried
    assert "Retrying" not in proc.stderr
    assert "only http:// and https:// are followed" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("value", ["\u00b2", "soon", "Mon, 99 Foo 2020 25:61:00 GMT", "1e9", "-5"])
def test_an_unparsable_retry_after_is_ignored_and_the_503_retried(tmp_path, server, value):
    data = os.urandom(5000)
    reg, out = one_model(tmp_path, server, {"a.bin": data})
    server.queue_fault("/m1/a.bin", Fault("status", status=503, retry_after=value))
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--progress_format", "json",
                          timeout=GUARD)
    assert proc.returncode == 0, proc.stderr
    assert [r.status for r in server.requests_for("/m1/a.bin")] == [503, 200]
    retries = [e for e in events(proc.stdout) if e["$type"] == "model_file_download_retry"]
    assert len(retries) == 1 and "503" in retries[0]["message"] and retries[0]["delay"] <= 1.0
    assert "ValueError" not in proc.stderr + proc.stdout


def test_a_tar_gz_served_with_content_encoding_gzip_is_stored_as_served(tmp_path, httpserver):
    """Servers often label .gz files Content-Encoding: gzip; the registry hashes the file as stored."""
    archive = gzip.compress(os.urandom(300 * KiB) + b"\0" * (300 * KiB))
    httpserver.expect_request("/m.tar.gz").respond_with_data(
        archive, headers={"Content-Encoding": "gzip", "Content-Type": "application/x-tar"})
    reg, out, target = _registry(tmp_path, httpserver.url_for("/m.tar.gz"), archive, "m.tar.gz")
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, timeout=GUARD)
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() == archive
    assert httpserver.log[0][0].headers.get("Accept-Encoding") == "identity"


def test_a_206_for_the_whole_file_from_byte_0_is_the_file(tmp_path, httpserver):
    data = os.urandom(70 * KiB)
    httpserver.expect_request("/w.bin").respond_with_data(
        data, status=206, headers={"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"})
    reg, out, target = _registry(tmp_path, httpserver.url_for("/w.bin"), data)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "1",
                          timeout=GUARD)
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() == data and len(httpserver.log) == 1


def test_a_206_for_part_of_the_file_from_byte_0_is_still_refused(tmp_path, httpserver):
    data = os.urandom(70 * KiB)
    httpserver.expect_request("/w.bin").respond_with_data(
        data[:1000], status=206, headers={"Content-Range": f"bytes 0-999/{len(data)}"})
    reg, out, target = _registry(tmp_path, httpserver.url_for("/w.bin"), data)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "1",
                          timeout=GUARD)
    assert proc.returncode == 1 and "Content-Range bytes 0-999" in proc.stderr
    assert not target.exists()
