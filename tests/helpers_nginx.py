"""nginx from apt, started on a free 127.0.0.1 port with its config, logs and temp folders in a work
folder, serving a root folder (a mirror, or the original source).

Real Range / If-Range / ETag behaviour, as a production static server gives it. Every answered
request is in its access log: ``requests()`` (method, path, status) counts them, ``transfers()``
(path, status, bytes sent, Range header) shows what each GET moved. An optional ``limit_rate``
(nginx syntax, per connection, e.g. "2m") slows transfers so that processes overlap.

Tests use the fixtures (they skip with a clear reason when nginx is not installed; CI installs it:
apt-get install -y nginx-light); benchmarks/ use ``NginxServer`` directly.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple, Optional

import pytest

from helpers_servers import free_port, stop_process, wait_listening

NOT_INSTALLED = "nginx is not installed (apt-get install -y nginx-light; .ci/run installs it)"
_LOG_FORMAT = "'\"$request\" $status $body_bytes_sent \"$http_range\"'"
_LOG_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) (?P<sent>\d+) '
                       r'"(?P<range>[^"]*)"')


class Request(NamedTuple):
    method: str
    path: str
    status: int
    sent: int  # body bytes sent
    range: str  # the request's Range header ("" without one)


def find_nginx() -> Optional[str]:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                          if os.path.exists(p)), None)


class NginxServer:
    """nginx serving ``root`` on 127.0.0.1; ``work`` (an existing folder) holds its own files."""

    def __init__(self, root: Path, work: Path, binary: Optional[str] = None, limit_rate: str = ""):
        binary = binary or find_nginx()
        if binary is None:
            raise RuntimeError(NOT_INSTALLED)
        self.root, self.work = root, work
        self.port = free_port()
        self.access_log = work / "access.log"
        user = "user root;" if os.geteuid() == 0 else ""  # workers must read pytest's 0700 tmp_path
        temps = "\n".join(f"  {kind}_temp_path {work}/{kind};" for kind in
                          ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (work / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 64; }}
http {{
  log_format requests {_LOG_FORMAT};
  access_log {self.access_log} requests;
{temps}
  default_type application/octet-stream;
  sendfile on;
  server {{
    listen 127.0.0.1:{self.port};
    root {root};
    location / {{ {f"limit_rate {limit_rate};" if limit_rate else ""} }}
  }}
}}
""")
        self.process = subprocess.Popen([binary, "-c", str(work / "nginx.conf"), "-p", str(work)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    def _wait_ready(self) -> None:
        wait_listening(self.process, self.port, "nginx", 10,
                       lambda: self.process.stderr.read().decode(errors="replace"), self.stop)

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, path: str) -> str:
        """The URL of ``path`` (relative to the root)."""
        return f"{self.url}/{path.lstrip('/')}"

    def log(self) -> list:
        """[Request] of every request answered so far."""
        if not self.access_log.exists():
            return []
        return [Request(m["method"], m["path"], int(m["status"]), int(m["sent"]), m["range"])
                for m in map(_LOG_LINE.search, self.access_log.read_text().splitlines()) if m]

    def requests(self) -> list:
        """[(method, path, status)] of every request answered so far."""
        return [(r.method, r.path, r.status) for r in self.log()]

    def transfers(self) -> list:
        """[(path, status, bytes sent, Range header)] of every GET answered so far (HEADs left out)."""
        return [(r.path, r.status, r.sent, r.range) for r in self.log() if r.method == "GET"]

    def stop(self) -> None:
        stop_process(self.process)
        self.process.stderr.close()


@pytest.fixture
def nginx_factory(tmp_path):
    """make(name, limit_rate="") -> an nginx serving tmp_path/<name> (created empty); all stop at the end."""
    binary = find_nginx()
    if binary is None:
        pytest.skip(NOT_INSTALLED)
    servers = []

    def make(name: str, limit_rate: str = "") -> NginxServer:
        root, work = tmp_path / name, tmp_path / f"{name}.nginx"
        root.mkdir()
        work.mkdir()
        servers.append(NginxServer(root, work, binary, limit_rate))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def nginx_mirror(nginx_factory):
    """nginx serving tmp_path/mirror (fill it as an output folder: public/<model>/<file>)."""
    return nginx_factory("mirror")


@pytest.fixture
def nginx(nginx_factory):
    """nginx serving tmp_path/nginx-root."""
    return nginx_factory("nginx-root")
