"""Mirrors through the command, with loopback nginx servers: order, fall-through, the real entry."""

from __future__ import annotations

import hashlib
import os
import shutil

from helpers_cache import digest, downloader, events, serve, served_by, tree, write_model
from helpers_nginx import nginx_factory, nginx_mirror  # noqa: F401

KiB = 1024


def test_mirrors_in_order_and_a_bad_copy_or_404_falls_through(tmp_path, nginx_factory, clean_env):
    origin, m1, m2 = nginx_factory("origin"), nginx_factory("m1"), nginx_factory("m2")
    data = {name: os.urandom(size) for name, size in (("a.bin", 300 * KiB), ("b.bin", 200 * KiB),
                                                     ("c.bin", 100 * KiB))}
    for name, blob in data.items():
        serve(origin.root, f"files/{name}", blob)
    serve(m1.root, "public/m/a.bin", os.urandom(300 * KiB))  # a bad copy: right size, wrong hash
    serve(m1.root, "public/m/c.bin", data["c.bin"])  # b.bin: 404 on both mirrors
    serve(m2.root, "public/m/a.bin", data["a.bin"])
    serve(m2.root, "public/m/c.bin", data["c.bin"])
    reg = write_model(tmp_path / "reg", "m", {n: (b, f"{origin.url}/files/{n}") for n, b in data.items()})
    out = tmp_path / "out"

    proc = downloader("--registry", reg, "--name", "m", "-o", out, "--mirror", m1.url, "--mirror", m2.url,
                      "--progress_format", "json", env=clean_env)
    assert proc.returncode == 0, proc.stderr
    assert served_by(proc.stdout) == {"a.bin": f"mirror {m2.url}", "b.bin": "original",
                                      "c.bin": f"mirror {m1.url}"}
    ends = {e["model_file"]: e.get("source") for e in events(proc.stdout) if e["$type"] == "model_file_download_end"}
    assert ends == {"a.bin": f"mirror {m2.url}", "b.bin": "original", "c.bin": f"mirror {m1.url}"}
    assert sorted(m1.requests()) == [("GET", "/public/m/a.bin", 200), ("GET", "/public/m/b.bin", 404),
                                     ("GET", "/public/m/c.bin", 200)]
    assert sorted(m2.requests()) == [("GET", "/public/m/a.bin", 200), ("GET", "/public/m/b.bin", 404)]
    assert origin.requests() == [("GET", "/files/b.bin", 200)]
    for name, blob in data.items():
        assert digest((out / "public" / "m" / name).read_bytes()) == digest(blob)
    assert tree(out) == ["public/m/a.bin", "public/m/b.bin", "public/m/c.bin"]
    # Why a mirror was passed over is said: the bad copy's hash, the 404.
    notes = {(e["model_file"], e["message"].split(" failed")[0]) for e in events(proc.stdout)
             if e["$type"] == "model_file_download_note"}
    assert {("a.bin", f"mirror {m1.url}"), ("b.bin", f"mirror {m1.url}"), ("b.bin", f"mirror {m2.url}")} <= notes
    bad = [e["message"] for e in events(proc.stdout) if e["$type"] == "model_file_download_note"
           and e["model_file"] == "a.bin"][0]
    assert digest(data["a.bin"]) in bad


def test_command_line_mirrors_come_before_omz_mirror(tmp_path, nginx_factory, clean_env):
    origin, env_mirror, cli_mirror = nginx_factory("origin"), nginx_factory("env"), nginx_factory("cli")
    blob = os.urandom(50 * KiB)
    for server in (origin, env_mirror, cli_mirror):
        serve(server.root, "public/m/x.bin", blob)
    reg = write_model(tmp_path / "reg", "m", {"x.bin": (blob, f"{origin.url}/public/m/x.bin")})
    env = dict(clean_env, OMZ_MIRROR=f"{env_mirror.url}  ")
    proc = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out", "--mirror", cli_mirror.url,
                      "--progress_format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert served_by(proc.stdout) == {"x.bin": f"mirror {cli_mirror.url}"}
    assert env_mirror.requests() == [] and origin.requests() == []
    # Without --mirror, OMZ_MIRROR alone is used.
    proc = downloader("--registry", reg, "--name", "m", "-o", tmp_path / "out2", "--progress_format", "json",
                      env=env)
    assert served_by(proc.stdout) == {"x.bin": f"mirror {env_mirror.url}"} and origin.requests() == []


def test_a_bad_mirror_url_is_a_usage_error(tmp_path, clean_env):
    proc = downloader("--name", "se-resnet-101", "-o", tmp_path, "--mirror", "ftp://x", env=clean_env)
    assert proc.returncode == 2 and "http:// or https://" in proc.stderr and "Traceback" not in proc.stderr


def test_real_se_resnet_101_through_an_nginx_mirror(tmp_path, nginx_mirror, se_resnet_prototxt, clean_env):
    """The built-in entry: the real prototxt lands verified; a generated caffemodel is refused."""
    folder = nginx_mirror.root / "public" / "se-resnet-101"
    folder.mkdir(parents=True)
    shutil.copyfile(se_resnet_prototxt, folder / "se-resnet-101.prototxt")  # read in place, copied here
    (folder / "se-resnet-101.caffemodel").write_bytes(os.urandom(4 << 20))
    out = tmp_path / "out"
    # The original URLs are unreachable here (a closed local proxy port): nothing leaves the host.
    proc = downloader("--name", "se-resnet-101", "-o", out, "--mirror", nginx_mirror.url,
                      "--num_attempts", "1", "--progress_format", "json", env=clean_env)
    assert proc.returncode == 1, proc.stderr
    model_dir = out / "public" / "se-resnet-101"
    prototxt = model_dir / "se-resnet-101.prototxt"
    assert hashlib.sha256(prototxt.read_bytes()).hexdigest() == \
        "c97375db60ad04e1196966c7149bd5cc98fbb9a34bdde511c26c922ba791903d"
    assert not (model_dir / "se-resnet-101.caffemodel").exists()
    assert tree(out) == ["public/se-resnet-101/se-resnet-101.prototxt"]  # no .part left either
    summary = events(proc.stdout)[-1]
    assert summary["failed"][0]["model"] == "se-resnet-101"
    assert "caffemodel" in summary["failed"][0]["message"]
    assert "FAILED:" in proc.stderr and "se-resnet-101" in proc.stderr
    assert served_by(proc.stdout) == {"se-resnet-101.prototxt": f"mirror {nginx_mirror.url}"}
    assert ("GET", "/public/se-resnet-101/se-resnet-101.caffemodel", 200) in nginx_mirror.requests()
