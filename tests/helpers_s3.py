"""A real S3 endpoint on 127.0.0.1 for the S3 cache tier tests: moto's standalone server
(``moto[server]``, its ``moto.server`` module) started as a subprocess on a free port, spoken to
through boto3 exactly as the downloader speaks to AWS S3 or MinIO.

``MotoServer(auth=True)`` checks credentials (moto's ``INITIAL_NO_AUTH_ACTION_COUNT=0``): every
request signed with a key moto's IAM does not know is refused with InvalidAccessKeyId.
Tests skip with a clear reason when boto3 or moto is not installed (``pip install -e '.[test]'``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import pytest

from helpers_servers import free_port, stop_process, wait_listening

NOT_INSTALLED = "needs boto3 and moto[server] (pip install -e '.[s3,test]')"
SECRET = "s3cr3t-" + "Zq9" * 8  # the secret key the tests give; asserted never to be printed


class MotoServer:
    def __init__(self, work, auth: bool = False):
        self.port = free_port()
        env = dict(os.environ, AWS_ACCESS_KEY_ID="moto", AWS_SECRET_ACCESS_KEY="moto")
        if auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        self.log = open(work / f"moto-{self.port}.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                         "-p", str(self.port)], stdout=self.log, stderr=subprocess.STDOUT,
                                        env=env)
        log = work / f"moto-{self.port}.log"
        wait_listening(self.process, self.port, "moto_server", 30, log.read_text, self.stop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, base: dict, secret: str = SECRET) -> dict:
        """The standard AWS variables pointing at this server, no config files, no instance role."""
        env = {k: v for k, v in base.items() if not k.startswith("AWS_")}
        return dict(env, AWS_ENDPOINT_URL=self.url, AWS_ACCESS_KEY_ID="AKIATESTKEY000000000",
                    AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1",
                    AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                    AWS_EC2_METADATA_DISABLED="true")

    def client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id="AKIATESTKEY000000000",
                            aws_secret_access_key=SECRET, region_name="us-east-1")

    def new_bucket(self) -> str:
        name = f"omz-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list:
        answer = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


def _require():
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        pytest.skip(NOT_INSTALLED)


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory):
    """One moto S3 server for the module's tests (each test makes its own bucket)."""
    _require()
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def bucket(moto_server) -> str:
    return moto_server.new_bucket()


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 in front of the S3 server that cuts one connection once it has sent
    ``cut_after`` bytes of answers (only a large GET body gets that far): a transfer broken mid-body,
    as a network does it. ``requests`` keeps what the clients sent (request lines and headers)."""

    def __init__(self, upstream_port: int, cut_after: int):
        import threading
        self.upstream_port, self.cut_after = upstream_port, cut_after
        self.cut = False
        self.requests = bytearray()
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import threading
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source, dest, answers: bool) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if not answers:
                    with self._lock:
                        self.requests += data
                elif not self.cut and sent + len(data) > self.cut_after:
                    with self._lock:
                        first = not self.cut
                        self.cut = True
                    if first:
                        dest.sendall(data[:self.cut_after - sent])
                        break
                dest.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (source, dest):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def stop(self) -> None:
        self._server.close()


SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b'<Message>Please reduce your request rate.</Message><RequestId>FAULT</RequestId></Error>')
_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


class SlowDownProxy:
    """An HTTP proxy on 127.0.0.1 in front of the S3 server that answers the first ``fail_first``
    requests of ``methods`` for each object whose path contains ``match`` with S3's throttling
    answer (503 SlowDown, its XML error body, ``Retry-After: retry_after`` when given), and passes
    every other request through. ``log`` lists (method, path, status) as answered."""

    def __init__(self, upstream_port: int, fail_first: int, match: str = "/sha256/",
                 methods: tuple = ("GET",), retry_after=None):
        import http.server
        import threading
        self.upstream_port, self.fail_first, self.match = upstream_port, fail_first, match
        self.methods, self.retry_after = methods, retry_after
        self.log: list = []
        self._counts: dict = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # the log list is what tests read
                pass

            def handle_one_request(self) -> None:
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    self.close_connection = True
                    return
                proxy._answer(self)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def refused(self, method: str = "GET") -> int:
        return sum(1 for m, _, status in self.log if m == method and status == 503)

    def _body(self, handler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(handler.rfile.readline().split(b";")[0], 16)
                body += handler.rfile.read(size) if size else b""
                handler.rfile.readline()
                if not size:
                    return bytes(body)
        return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))

    def _answer(self, handler) -> None:
        import http.client
        body = self._body(handler)
        with self._lock:
            count = self._counts.get(handler.path, 0)
            fail = handler.command in self.methods and self.match in handler.path and count < self.fail_first
            if fail:
                self._counts[handler.path] = count + 1
        if fail:
            self.log.append((handler.command, handler.path, 503))
            handler.send_response(503, "Slow Down")
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(SLOW_DOWN)))
            if self.retry_after is not None:
                handler.send_header("Retry-After", str(self.retry_after))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(SLOW_DOWN)
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
        if body or handler.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        upstream.request(handler.command, handler.path, body=body or None, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.log.append((handler.command, handler.path, answer.status))
        handler.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP and name.lower() != "content-length":
                handler.send_header(name, value)
        length = answer.getheader("Content-Length") if handler.command == "HEAD" else str(len(data))
        if length is not None:
            handler.send_header("Content-Length", length)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
        upstream.close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
