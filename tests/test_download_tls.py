"""HTTPS from a loopback server with a self-signed certificate (made with the openssl command):
refused without its CA (one clear message, no retry, nothing at the final path), accepted with the
CA bundle named by REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, and reached through the CONNECT proxy that
HTTPS_PROXY names."""

from __future__ import annotations

import hashlib
import http.server
import os
import select
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading

import pytest

from helpers_http import one_model, run_downloader

DATA = os.urandom(300_000)
PROXIED_HOST = "files.example.invalid"  # does not resolve: only the proxy can reach it


@pytest.fixture
def https_server(tmp_path):
    """(base URL, CA file, request log) of an HTTPS server on 127.0.0.1 serving /m1/w.bin."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                           "-subj", "/CN=127.0.0.1", "-addext", f"subjectAltName=IP:127.0.0.1,DNS:{PROXIED_HOST}",
                           "-keyout", str(key), "-out", str(cert)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    log = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            log.append(self.path)
            if self.path != "/m1/w.bin":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            self.wfile.write(DATA)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert, log
    finally:
        server.shutdown()
        server.server_close()


def _registry(tmp_path, base):
    return one_model(tmp_path, None, {"w.bin": {"data": DATA, "source": f"{base}/m1/w.bin"}})


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env.update({"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", **extra})
    return env


def test_unknown_certificate_is_refused_at_once_with_a_hint(tmp_path, https_server):
    base, _, log = https_server
    reg, out = _registry(tmp_path, base)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, env=_env())
    assert proc.returncode == 1
    assert f"TLS error talking to {base}/m1/w.bin (" in proc.stderr
    assert "certificate verify failed" in proc.stderr and "set REQUESTS_CA_BUNDLE" in proc.stderr
    assert "Retrying" not in proc.stderr + proc.stdout  # a certificate does not change by retrying
    assert not log  # the handshake failed: no request was made
    assert not (out / "public" / "m1" / "w.bin").exists()


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_ca_bundle_from_the_environment_is_trusted(tmp_path, https_server, variable):
    base, cert, log = https_server
    reg, out = _registry(tmp_path, base)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, env=_env(**{variable: str(cert)}))
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256((out / "public" / "m1" / "w.bin").read_bytes()).digest() == hashlib.sha256(DATA).digest()
    assert log == ["/m1/w.bin"]


class ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy that only tunnels CONNECT, to 127.0.0.1:<target_port> whatever host is asked
    for; ``asked`` logs the CONNECT lines."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.asked: list = []
        super().__init__(("127.0.0.1", 0), _Tunnel)


class _Tunnel(socketserver.StreamRequestHandler):
    def handle(self):
        request = self.rfile.readline().decode("latin-1").strip()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        self.server.asked.append(request)
        if not request.startswith("CONNECT "):
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection(("127.0.0.1", self.server.target_port))
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        ends = [self.connection, upstream]
        try:
            while True:
                ready, _, _ = select.select(ends, [], [], 30)
                if not ready:
                    return
                for end in ready:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()


def test_https_through_the_proxy_named_by_https_proxy(tmp_path, https_server):
    base, cert, log = https_server
    proxy = ConnectProxy(int(base.rsplit(":", 1)[1]))
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        reg, out = _registry(tmp_path, f"https://{PROXIED_HOST}")
        proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
        env = _env(HTTPS_PROXY=proxy_url, https_proxy=proxy_url, REQUESTS_CA_BUNDLE=str(cert),
                   NO_PROXY="", no_proxy="")
        proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, env=env)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert proc.returncode == 0, proc.stderr
    assert (out / "public" / "m1" / "w.bin").read_bytes() == DATA
    assert [line.rsplit(" ", 1)[0] for line in proxy.asked] == [f"CONNECT {PROXIED_HOST}:443"]
    assert log == ["/m1/w.bin"]
