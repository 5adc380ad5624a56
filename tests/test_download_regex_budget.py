"""regex_replace runs within a time budget (OMZ_REGEX_TIMEOUT seconds): a pattern that backtracks
catastrophically fails that model with a message naming the model, the file and the pattern, and
leaves the file as it was; an ordinary pattern is unaffected."""

from __future__ import annotations

import os

from helpers_http import one_model, run_downloader, server  # noqa: F401

HANG_GUARD = 600  # seconds: only so that a regression hangs the test run no longer than this


def _env(**values) -> dict:
    env = dict(os.environ)
    env.pop("OMZ_REGEX_TIMEOUT", None)
    env.update(values)
    return env


def test_catastrophic_pattern_is_stopped_with_a_message(tmp_path, server):
    text = b"a" * 34 + b"!"  # 35 bytes: (a+)+$ tries ~2**34 ways before failing
    reg, out = one_model(tmp_path, server, {"cfg.txt": text, "other.bin": b"\1" * 10}, postprocessing=[
        {"$type": "regex_replace", "file": "cfg.txt", "pattern": "(a+)+$", "replacement": "b"}])
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, env=_env(OMZ_REGEX_TIMEOUT="2"),
                          timeout=HANG_GUARD)
    assert proc.returncode == 1, proc.stderr
    assert "m1" in proc.stderr and "cfg.txt" in proc.stderr and "'(a+)+$'" in proc.stderr
    assert "OMZ_REGEX_TIMEOUT" in proc.stderr and "Traceback" not in proc.stderr
    folder = out / "public" / "m1"
    assert (folder / "cfg.txt").read_bytes() == text
    assert not (folder / "cfg.txt.orig").exists() and not list(folder.glob(".*regex-tmp"))


def test_ordinary_patterns_still_work_within_the_budget(tmp_path, server):
    text = ("line: value\n" * 20000).encode() + "ünïcode ✓\n".encode()
    reg, out = one_model(tmp_path, server, {"cfg.txt": text}, postprocessing=[
        {"$type": "regex_replace", "file": "cfg.txt", "pattern": r"value(\n)", "replacement": r"VALUE\1",
         "count": 0},
        {"$type": "regex_replace", "file": "cfg.txt", "pattern": "ü", "replacement": "u"}])
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, env=_env(), timeout=HANG_GUARD)
    assert proc.returncode == 0, proc.stderr
    result = (out / "public" / "m1" / "cfg.txt").read_text(encoding="utf-8")
    assert result == "line: VALUE\n" * 20000 + "unïcode ✓\n"


def test_a_bad_budget_value_is_one_clear_message(tmp_path, server):
    reg, out = one_model(tmp_path, server, {"cfg.txt": b"abc"}, postprocessing=[
        {"$type": "regex_replace", "file": "cfg.txt", "pattern": "b", "replacement": "c"}])
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, env=_env(OMZ_REGEX_TIMEOUT="soon"),
                          timeout=HANG_GUARD)
    assert proc.returncode == 1
    assert "OMZ_REGEX_TIMEOUT" in proc.stderr and "'soon'" in proc.stderr and "Traceback" not in proc.stderr
