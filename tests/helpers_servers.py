"""What every loopback server the tests start (nginx, moto) needs: a free port on 127.0.0.1, a
wait until the server listens there (failing the test with the server's own words if it dies),
and a stop that does not hang on a server that ignores SIGTERM."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Callable

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(process: subprocess.Popen, port: int, name: str, seconds: float,
                   output: Callable[[], str], stop: Callable[[], None]) -> None:
    """Return once 127.0.0.1:port accepts a connection; fail the test if ``process`` exits first
    (with ``output()``) or nothing listens within ``seconds`` (after ``stop()``)."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            pytest.fail(f"{name} did not start: {output()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                stop()
                pytest.fail(f"{name} did not listen on 127.0.0.1:{port}")
            time.sleep(0.02)


def stop_process(process: subprocess.Popen, grace: float = 5) -> None:
    """SIGTERM, then SIGKILL if the server is still running after ``grace`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
