"""Google Drive sources against a loopback stand-in (OMZ_GOOGLE_DRIVE_URL): the virus-scan confirm
page (old cookie style and the current form style), and an HTML page where the file should be."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

from helpers_http import events, run_downloader, server, sha256, write_registry  # noqa: F401

MiB = 1 << 20
WARNING = b"<html><body>Google Drive can't scan this file for viruses.</body></html>"


def _send(h, status, body, content_type, headers=()):
    h.send_response(status)
    for key, value in headers:
        h.send_header(key, value)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)
    return status


def _download(tmp_path, server, data, *args):
    """omz-downloader on a registry with one Google Drive file (content ``data``), Drive being the
    stand-in at server's /uc; (the finished process, where the file goes)."""
    registry = tmp_path / "reg"
    write_registry(registry, {"public/gd": {"files": [
        {"name": "w.bin", "size": len(data), "sha256": sha256(data),
         "source": {"$type": "google_drive", "id": "FILEID"}}]}})
    out = tmp_path / "out"
    proc = run_downloader("--registry", registry, "--name", "gd", "-o", out, *args,
                          env=dict(os.environ, OMZ_GOOGLE_DRIVE_URL=server.url("/uc")))
    return proc, out / "public" / "gd" / "w.bin"


def test_cookie_confirm_page(tmp_path, server):
    data = os.urandom(MiB + 7)

    def drive(h):
        query = parse_qs(urlsplit(h.path).query)
        assert query["id"] == ["FILEID"]
        if query.get("confirm") == ["T0K3N"]:
            return _send(h, 200, data, "application/octet-stream")
        return _send(h, 200, WARNING, "text/html", [("Set-Cookie", "download_warning_123=T0K3N; Path=/")])

    server.routes["/uc"] = drive
    proc, target = _download(tmp_path, server, data)
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() == data
    assert len(server.requests_for("/uc")) == 2


def test_form_confirm_page(tmp_path, server):
    data = os.urandom(MiB + 9)
    form = (f'<html><body><form id="download-form" action="{server.url("/download")}" method="get">'
            '<input type="hidden" name="id" value="FILEID"><input type="hidden" name="export" value="download">'
            '<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="U-1">'
            '<input type="submit" value="Download anyway"></form></body></html>').encode()
    server.routes["/uc"] = lambda h: _send(h, 200, form, "text/html; charset=utf-8")

    def usercontent(h):
        query = parse_qs(urlsplit(h.path).query)
        assert query["uuid"] == ["U-1"] and query["confirm"] == ["t"]
        return _send(h, 200, data, "application/octet-stream")

    server.routes["/download"] = usercontent
    proc, target = _download(tmp_path, server, data)
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() == data


def test_quota_page_is_an_html_error(tmp_path, server):
    page = b"<!DOCTYPE html><html><title>Quota exceeded</title><body>Too many users</body></html>"
    server.routes["/uc"] = lambda h: _send(h, 200, page, "text/html")
    proc, target = _download(tmp_path, server, os.urandom(1000), "--progress_format", "json")
    assert proc.returncode == 1
    summary = events(proc.stdout)[-1]
    assert "HTML page instead of the file" in summary["failed"][0]["message"]
    assert not target.exists()
