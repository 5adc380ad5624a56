"""The command: JSON events, text output, exit codes, -j, skipping verified files, --check_all,
--precisions, and what it imports."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from helpers_http import Fault, events, one_model, run_downloader, server, write_registry  # noqa: F401

MiB = 1 << 20
OMZ_FIELDS = {
    "model_download_begin": {"model", "num_files"},
    "model_file_download_begin": {"model", "model_file", "size"},
    "model_file_download_progress": {"model", "model_file", "size"},
    "model_file_download_end": {"model", "model_file", "successful"},
    "model_download_end": {"model", "successful"},
    "model_postprocessing_begin": {"model"},
    "model_postprocessing_end": {"model"},
}


def test_json_events_have_omz_downloader_types_and_fields(tmp_path, server):
    big, small = os.urandom(2 * MiB), b"tiny\n"
    reg, out = one_model(tmp_path, server, {"big.bin": big, "small.txt": small})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--progress_format", "json")
    assert proc.returncode == 0, proc.stderr
    evs = events(proc.stdout)  # every stdout line is one JSON object
    for event in evs:
        if event["$type"] in OMZ_FIELDS:
            assert set(event) - {"$type"} >= OMZ_FIELDS[event["$type"]], event
    types = [e["$type"] for e in evs]
    assert types[0] == "model_download_begin" and evs[0] == {"$type": "model_download_begin", "model": "m1",
                                                             "num_files": 2}
    assert types[-2:] == ["model_download_end", "download_summary"]
    assert evs[-2]["successful"] is True
    begin = types.index("model_file_download_begin")
    assert evs[begin] == {"$type": "model_file_download_begin", "model": "m1", "model_file": "big.bin",
                          "size": 2 * MiB}
    progress = [e for e in evs if e["$type"] == "model_file_download_progress" and e["model_file"] == "big.bin"]
    assert progress and progress[-1]["size"] == 2 * MiB
    ends = [e for e in evs if e["$type"] == "model_file_download_end"]
    assert [(e["model_file"], e["successful"]) for e in ends] == [("big.bin", True), ("small.txt", True)]
    summary = evs[-1]
    assert summary["successful"] == ["m1"] and summary["failed"] == []
    assert summary["files_downloaded"] == 2 and summary["bytes_downloaded"] == 2 * MiB + len(small)


def test_rerun_skips_verified_files_without_any_request(tmp_path, server):
    reg, out = one_model(tmp_path, server, {"a.bin": os.urandom(MiB), "b.txt": b"b"})
    assert run_downloader("--registry", reg, "--name", "m1", "-o", out).returncode == 0
    before = len(server.log)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--progress_format", "json")
    assert proc.returncode == 0
    assert len(server.log) == before
    skips = [e for e in events(proc.stdout) if e["$type"] == "model_file_download_skip"]
    assert [s["model_file"] for s in skips] == ["a.bin", "b.txt"]
    assert events(proc.stdout)[-1]["files_present"] == 2


def test_record_is_trusted_until_the_file_changes_and_check_all_rehashes(tmp_path, server):
    data = os.urandom(MiB)
    reg, out = one_model(tmp_path, server, {"a.bin": data})
    target = out / "public" / "m1" / "a.bin"
    assert run_downloader("--registry", reg, "--name", "m1", "-o", out).returncode == 0
    # Corrupt it in place but keep size, mtime and inode: the record (rightly) cannot see it...
    stat = target.stat()
    with open(target, "r+b") as stream:
        stream.write(b"\0" * 16)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert run_downloader("--registry", reg, "--name", "m1", "-o", out).returncode == 0
    assert len(server.requests_for("/m1/a.bin")) == 1
    # ...--check_all re-hashes, finds the damage, and fetches the file again.
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--check_all")
    assert proc.returncode == 0, proc.stderr
    assert "not the expected file" in proc.stderr
    assert len(server.requests_for("/m1/a.bin")) == 2 and target.read_bytes() == data


def test_a_touched_file_is_rehashed_not_refetched(tmp_path, server):
    reg, out = one_model(tmp_path, server, {"a.bin": os.urandom(MiB)})
    assert run_downloader("--registry", reg, "--name", "m1", "-o", out).returncode == 0
    os.utime(out / "public" / "m1" / "a.bin")
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0 and len(server.requests_for("/m1/a.bin")) == 1


def test_jobs_download_files_concurrently(tmp_path, server):
    blobs = {f"f{i}.bin": os.urandom(MiB + i) for i in range(4)}
    reg, out = one_model(tmp_path, server, blobs)
    for name in blobs:  # slow enough that the transfers overlap
        server.queue_fault(f"/m1/{name}", Fault("trickle", after=MiB - 64 * 1024, delay=0.002))
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "-j", "4")
    assert proc.returncode == 0, proc.stderr
    assert server.max_active >= 2
    for name, data in blobs.items():
        assert (out / "public" / "m1" / name).read_bytes() == data


def test_one_failing_model_fails_alone_with_a_failed_list(tmp_path, server):
    good = os.urandom(1000)
    registry = tmp_path / "reg"
    write_registry(registry, {
        "public/good": {"files": [{"name": "g.bin", "data": good, "source": server.add("/g.bin", good)}]},
        "public/bad": {"files": [{"name": "b.bin", "data": good, "source": server.url("/missing")}]},
    })
    out = tmp_path / "out"
    proc = run_downloader("--registry", registry, "--name", "good,bad", "-o", out, "-j", "2")
    assert proc.returncode == 1
    assert (out / "public" / "good" / "g.bin").read_bytes() == good
    failed = proc.stderr.split("FAILED:\n", 1)[1].splitlines()
    assert len(failed) == 1 and failed[0].startswith("bad: b.bin: HTTP 404 Not Found (")
    proc = run_downloader("--registry", registry, "--name", "good,bad", "-o", out, "--progress_format", "json")
    summary = events(proc.stdout)[-1]
    assert summary["successful"] == ["good"] and summary["failed"][0]["model"] == "bad"
    assert "HTTP 404" in summary["failed"][0]["message"]


@pytest.mark.parametrize("args", [[], ["--name", "m1", "--all"], ["--name", "m1", "-j", "0"],
                                  ["--name", "m1", "--precisions", "FP64"],
                                  ["--name", "m1", "--progress_format", "xml"],
                                  ["--name", "m1", "--num_attempts", "0"]])
def test_usage_errors_exit_2(tmp_path, server, args):
    reg, out = one_model(tmp_path, server, {"a.txt": b"a"})
    proc = run_downloader("--registry", reg, "-o", out, *args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not server.log


def test_no_matching_model_exits_1(tmp_path, server):
    reg, out = one_model(tmp_path, server, {"a.txt": b"a"})
    proc = run_downloader("--registry", reg, "--name", "nope*", "-o", out)
    assert proc.returncode == 1 and 'No matching models: "nope*"' in proc.stderr


def test_precisions_select_ir_files(tmp_path, server):
    registry = tmp_path / "reg"
    files = []
    for precision in ("FP16", "FP32"):
        for ext in ("xml", "bin"):
            data = f"{precision}.{ext}".encode()
            files.append({"name": f"{precision}/ir.{ext}", "data": data,
                          "source": server.add(f"/{precision}/ir.{ext}", data)})
    write_registry(registry, {"intel/ir": {"files": files, "framework": "dldt"}})
    data = yaml.safe_load((registry / "intel/ir/model.yml").read_text())
    del data["model_optimizer_args"]
    (registry / "intel/ir/model.yml").write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    proc = run_downloader("--registry", registry, "--name", "ir", "-o", out, "--precisions", "FP16")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.xml")) == ["intel/ir/FP16/ir.xml"]
    proc = run_downloader("--registry", registry, "--name", "ir", "-o", out, "--precisions", "FP16-INT8")
    assert proc.returncode == 0 and "Skipped ir: ir is not available in FP16-INT8" in proc.stdout
    proc = run_downloader("--registry", registry, "--name", "ir", "-o", out, "--precisions", "FP16-INT8",
                          "--progress_format", "json")
    skip = [e for e in events(proc.stdout) if e["$type"] == "model_download_skip"]
    assert skip and skip[0]["model"] == "ir" and "FP16-INT8" in skip[0]["reason"]


def test_text_output_is_plain_lines_when_not_a_terminal(tmp_path, server):
    reg, out = one_model(tmp_path, server, {"a.bin": os.urandom(MiB)})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0
    assert "\r" not in proc.stdout and "\x1b[" not in proc.stdout
    assert "Verified m1/a.bin" in proc.stdout
    assert any(line.startswith("Done: 1 model(s) ready, 0 failed") for line in proc.stdout.splitlines())


def test_default_output_dir_is_the_current_folder(tmp_path, server):
    reg, _ = one_model(tmp_path, server, {"a.txt": b"a"})
    work = tmp_path / "cwd"
    work.mkdir()
    proc = run_downloader("--registry", reg, "--name", "m1", cwd=work)
    assert proc.returncode == 0 and (work / "public" / "m1" / "a.txt").read_bytes() == b"a"


_IMPORTS_PROBE = """
import sys, atexit
atexit.register(lambda: print("MODULES", *sorted(m for m in ("requests", "urllib3", "tqdm", "openvino", "numpy")
                                               if m in sys.modules), file=sys.stderr))
from omz_tools.cli.downloader import main
sys.argv = ["omz-downloader", *sys.argv[1:]]
main()
"""


def test_print_all_and_reruns_import_neither_requests_nor_openvino(tmp_path, server):
    reg, out = one_model(tmp_path, server, {"a.txt": b"a"})
    env = dict(os.environ, CI="true")

    def modules(*args):
        proc = subprocess.run([sys.executable, "-c", _IMPORTS_PROBE, "--registry", str(reg), *args],
                              capture_output=True, text=True, env=env)
        line = [ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES")][-1]
        return proc.returncode, line.split()[1:]

    assert modules("--print_all") == (0, [])
    code, first = modules("--name", "m1", "-o", str(out))
    assert code == 0 and "requests" in first and "openvino" not in first and "numpy" not in first
    assert modules("--name", "m1", "-o", str(out)) == (0, [])  # everything present: no HTTP stack


def test_progress_bars_on_a_terminal(tmp_path, server):
    import pty
    reg, out = one_model(tmp_path, server, {"a.bin": os.urandom(2 * MiB), "b.txt": b"b"})
    env = dict(os.environ, CI="true", COLUMNS="100")
    from helpers_http import downloader_cmd
    for _ in range(2):  # downloading, then everything skipped
        primary, secondary = pty.openpty()
        import fcntl
        import struct
        import termios
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))  # 100 columns
        proc = subprocess.Popen([downloader_cmd(), "--registry", str(reg), "--name", "m1", "-o", str(out)],
                                stdin=secondary, stdout=secondary, stderr=secondary, env=env)
        os.close(secondary)
        output = b""
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            output += data
        os.close(primary)
        assert proc.wait() == 0, output.decode(errors="replace")
        text = output.decode(errors="replace")
        assert "total" in text and "Done: 1 model(s) ready" in text
    assert (out / "public" / "m1" / "a.bin").stat().st_size == 2 * MiB
