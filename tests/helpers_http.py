"""A small threaded HTTP/1.1 server on 127.0.0.1 that injects faults, for the downloader tests.

Per file it can honour or ignore Range (with If-Range against its ETag), answer a wrong
Content-Range, serve no Content-Length, serve HTML; per request (queued faults) it can fail with a
status and Retry-After, drop the connection after N bytes, or trickle slowly after N bytes.
It counts requests per path.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Resource:
    body: bytes
    etag: Optional[str] = None
    honour_range: bool = True
    wrong_content_range: bool = False
    content_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    content_type: str = "application/octet-stream"


@dataclass
class Fault:
    kind: str  # "status", "drop", "trickle"
    status: int = 503
    retry_after: Optional[str] = None
    after: int = 0  # bytes sent before dropping / trickling
    delay: float = 0.05  # trickle: seconds between 1 KiB pieces


@dataclass
class Served:
    path: str
    headers: dict
    status: int = 0


class FaultServer:
    def __init__(self):
        self.resources: dict = {}
        self.faults: dict = {}
        self.routes: dict = {}  # path -> callable(handler) for custom answers (Google Drive)
        self.log: list = []
        self.lock = threading.Lock()
        self.active = 0  # requests being answered now
        self.max_active = 0  # the most answered at once (shows -j at work)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with server.lock:
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    server._handle(self)
                finally:
                    with server.lock:
                        server.active -= 1

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # clients dropping keep-alive connections are normal here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    # -- set up ---------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, body: bytes, **options) -> str:
        options.setdefault("etag", '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
        self.resources[path] = Resource(body, **options)
        return self.url(path)

    def queue_fault(self, path: str, fault: Fault, times: int = 1) -> None:
        with self.lock:
            self.faults.setdefault(path, []).extend([fault] * times)

    def requests_for(self, path: str) -> list:
        with self.lock:
            return [r for r in self.log if r.path.split("?")[0] == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- serving --------------------------------------------------------------------------------

    def _handle(self, h) -> None:
        path = h.path.split("?")[0]
        entry = Served(h.path, dict(h.headers))
        with self.lock:
            self.log.append(entry)
            fault = self.faults[path].pop(0) if self.faults.get(path) else None
        if path in self.routes:
            entry.status = self.routes[path](h) or 200
            return
        resource = self.resources.get(path)
        if resource is None:
            entry.status = 404
            return self._simple(h, 404, b"not found")
        if fault is not None and fault.kind == "status":
            entry.status = fault.status
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return self._simple(h, fault.status, b"try later", extra)

        body, status, headers = resource.body, 200, {"ETag": resource.etag,
                                                     "Content-Type": resource.content_type}
        requested = h.headers.get("Range")
        if_range = h.headers.get("If-Range")
        if requested and resource.honour_range and (if_range is None or if_range == resource.etag):
            start = int(requested.split("=")[1].split("-")[0])
            if start >= len(body):
                entry.status = 416
                return self._simple(h, 416, b"", {"Content-Range": f"bytes */{len(body)}"})
            shown = start + 1 if resource.wrong_content_range else start
            status = 206
            headers["Content-Range"] = f"bytes {shown}-{len(body) - 1}/{len(body)}"
            body = body[start:]
        entry.status = status
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        if resource.content_length:
            h.send_header("Content-Length", str(len(body)))
        else:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        try:
            if fault is not None and fault.kind == "drop":
                h.wfile.write(body[:fault.after])
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault is not None and fault.kind == "trickle":
                h.wfile.write(body[:fault.after])
                h.wfile.flush()
                for i in range(fault.after, len(body), 1024):
                    h.wfile.write(body[i:i + 1024])
                    h.wfile.flush()
                    time.sleep(fault.delay)
                return
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    @staticmethod
    def _simple(h, status: int, body: bytes, headers: Optional[dict] = None) -> None:
        h.send_response(status)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Content-Type", "text/plain")
        h.end_headers()
        h.wfile.write(body)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_registry(root, models: dict) -> None:
    """Write a registry: {"public/name": {"files": [...], "postprocessing": [...]}} as model.yml files.

    Each file: dict(name, data or size/hash, url); ``framework`` defaults to onnx with MO args."""
    import yaml
    from pathlib import Path

    for subdir, spec in models.items():
        folder = Path(root) / subdir
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for f in spec["files"]:
            entry = {"name": f["name"], "size": f.get("size", len(f.get("data", b""))),
                     "sha256": f.get("sha256") or sha256(f["data"]), "source": f["source"]}
            files.append(entry)
        data = {"description": "test model", "task_type": "classification", "license": "none",
                "framework": spec.get("framework", "onnx"), "files": files,
                "model_optimizer_args": ["--input_model=$dl_dir/model.onnx"]}
        if spec.get("postprocessing"):
            data["postprocessing"] = spec["postprocessing"]
        write_registry_files(root, {subdir: data})


# -- fixtures and helpers shared by the tests/test_download_*.py modules ---------------------------

import json as _json
import os as _os
import subprocess as _subprocess
import sys as _sys
from pathlib import Path as _Path

import pytest as _pytest


@_pytest.fixture
def server():
    s = FaultServer()
    yield s
    s.close()


def downloader_cmd() -> str:
    path = _Path(_sys.executable).parent / "omz-downloader"
    return str(path)


def run_downloader(*args, env=None, **kwargs) -> _subprocess.CompletedProcess:
    env = dict(env or _os.environ)
    env.pop("OMZ_REGISTRY", None)
    env["CI"] = "true"
    return _subprocess.run([downloader_cmd(), *map(str, args)], capture_output=True, text=True,
                           env=env, **kwargs)


from conftest import events, write_registry_files  # noqa: E402,F401 - the one writer and events()


def one_model(tmp_path, server, files: dict, model: str = "m1", postprocessing=None, prefix=None):
    """A registry in tmp_path/reg with one model public/<model> whose files (name -> bytes) are
    served by ``server`` at /<model>/<name>. Returns (registry, output folder)."""
    prefix = prefix or f"/{model}/"
    specs = []
    for name, data in files.items():
        if isinstance(data, dict):
            specs.append({"name": name, **data})
        else:
            specs.append({"name": name, "data": data, "source": server.add(prefix + name, data)})
    registry = tmp_path / "reg"
    write_registry(registry, {f"public/{model}": {"files": specs, "postprocessing": postprocessing}})
    return registry, tmp_path / "out"
