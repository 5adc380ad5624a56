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

from helpers_servers import free_port, wait_listening

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
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
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
