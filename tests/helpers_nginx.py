"""nginx from apt, started by a test on a free 127.0.0.1 port with a temp config and root.

Real Range / If-Range / ETag behaviour, as a production static server gives it. Skips the test
with a clear reason when nginx is not installed (CI installs it: apt-get install -y nginx-light).
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

_LOG = re.compile(r'"GET (?P<path>\S+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<range>[^"]*)"')


def find_nginx():
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                          if os.path.exists(p)), None)


class NginxServer:
    def __init__(self, root: Path, work: Path, binary: str):
        self.root, self.work = root, work
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.access_log = work / "access.log"
        temps = "\n".join(f"  {k}_temp_path {work}/{k};" for k in ("client_body", "proxy", "fastcgi",
                                                                   "uwsgi", "scgi"))
        (work / "nginx.conf").write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 64; }}
http {{
  log_format ranges '"$request" $status $body_bytes_sent "$http_range"';
  access_log {self.access_log} ranges;
{temps}
  default_type application/octet-stream;
  sendfile on;
  server {{
    listen 127.0.0.1:{self.port};
    root {root};
  }}
}}
""")
        self.process = subprocess.Popen([binary, "-c", str(work / "nginx.conf"), "-p", str(work)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    err = self.process.stderr.read().decode(errors="replace") if self.process.poll() is not None else ""
                    self.stop()
                    pytest.fail(f"nginx did not start on 127.0.0.1:{self.port}: {err}")
                time.sleep(0.05)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def requests(self) -> list:
        """(path, status, bytes sent, Range header) per request answered so far."""
        if not self.access_log.exists():
            return []
        return [(m["path"], int(m["status"]), int(m["bytes"]), m["range"])
                for m in map(_LOG.search, self.access_log.read_text().splitlines()) if m]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def nginx(tmp_path):
    binary = find_nginx()
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx-light); needed for real Range/If-Range")
    root, work = tmp_path / "nginx-root", tmp_path / "nginx-work"
    root.mkdir()
    work.mkdir()
    server = NginxServer(root, work, binary)
    yield server
    server.stop()
