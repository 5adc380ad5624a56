"""A loopback nginx that serves a folder (a mirror), and counts the requests it answered.

Started by the tests, on 127.0.0.1 only, with its config, logs and temp folders in tmp_path.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
_LOG_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3})')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Nginx:
    def __init__(self, root: Path, work: Path, limit_rate: str = ""):
        self.root = root
        self.work = work
        self.port = _free_port()
        self.access_log = work / "access.log"
        conf = work / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""  # workers must read pytest's 0700 tmp_path
        temp = "\n".join(f"  {kind}_temp_path {work}/{kind};" for kind in
                         ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf.write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {self.access_log};
{temp}
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{self.port};
    root {root};
    location / {{ {f"limit_rate {limit_rate};" if limit_rate else ""} }}
  }}
}}
""")
        self.process = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(work)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    def _wait_ready(self) -> None:
        for _ in range(500):
            if self.process.poll() is not None:
                pytest.fail(f"nginx did not start: {self.process.stderr.read().decode(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        pytest.fail(f"nginx did not listen on 127.0.0.1:{self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list:
        """[(method, path, status)] of every request answered so far."""
        if not self.access_log.exists():
            return []
        return [(m["method"], m["path"], int(m["status"]))
                for m in map(_LOG_LINE.search, self.access_log.read_text().splitlines()) if m]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


@pytest.fixture
def nginx_factory(tmp_path):
    """make(name, limit_rate="") -> an nginx serving tmp_path/<name> (created empty).

    limit_rate (nginx syntax, per connection, e.g. "2m") slows transfers so processes overlap.
    """
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    servers = []

    def make(name: str, limit_rate: str = "") -> Nginx:
        root = tmp_path / name
        root.mkdir()
        work = tmp_path / f"{name}.nginx"
        work.mkdir()
        servers.append(Nginx(root, work, limit_rate))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def nginx_mirror(nginx_factory):
    """nginx serving tmp_path/mirror (fill it as an output folder: public/<model>/<file>)."""
    return nginx_factory("mirror")
