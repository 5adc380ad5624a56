"""Links planted where the downloader keeps its own state (``<file>.part``, ``<file>.part.json``,
``.omz_verified.json``, lock files, cache locks and temporary files) are removed and said, never
followed: nothing outside the output folder or the cache is created or changed, and every final
path ends up as a regular file holding the registry's bytes."""

from __future__ import annotations

import json
import os

from helpers_http import one_model, run_downloader, server, sha256  # noqa: F401

DATA = os.urandom(300_000)


def _setup(tmp_path, server):
    reg, out = one_model(tmp_path, server, {"w.bin": DATA})
    folder = out / "public" / "m1"
    folder.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    return reg, out, folder, outside


def _assert_final(folder):
    target = folder / "w.bin"
    assert not target.is_symlink() and target.is_file()
    assert target.read_bytes() == DATA
    for leftover in ("w.bin.part", "w.bin.part.json", ".w.bin.lock"):
        assert not os.path.lexists(folder / leftover), leftover


def test_dangling_part_link_pointing_outside_is_removed_not_followed(tmp_path, server):
    reg, out, folder, outside = _setup(tmp_path, server)
    (folder / "w.bin.part").symlink_to(outside / "created")
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert not os.path.lexists(outside / "created")
    _assert_final(folder)
    said = proc.stdout + proc.stderr
    assert "w.bin.part" in said and "symbolic link" in said and "removed" in said


def test_part_link_to_an_existing_outside_file_with_matching_part_json_is_not_overwritten(tmp_path, server):
    reg, out, folder, outside = _setup(tmp_path, server)
    victim = outside / "victim.txt"
    victim.write_bytes(b"precious data\n")  # 14 bytes
    (folder / "w.bin.part").symlink_to(victim)
    (folder / "w.bin.part.json").write_text(json.dumps({
        "url": server.url("/m1/w.bin"), "validator": None, "algorithm": "sha256", "hash": sha256(DATA),
        "size": len(DATA)}))
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_bytes() == b"precious data\n"
    _assert_final(folder)
    # Nothing was resumed from the outside file: the whole file was fetched from byte 0.
    assert all("Range" not in r.headers for r in server.requests_for("/m1/w.bin"))


def test_links_at_part_json_record_and_lock_are_removed_not_followed(tmp_path, server):
    reg, out, folder, outside = _setup(tmp_path, server)
    victims = {}
    for name in ("w.bin.part.json", ".omz_verified.json", ".omz_verified.json.lock", ".w.bin.lock"):
        victim = outside / f"victim-{name.strip('.')}"
        victim.write_text("keep me")
        victims[name] = victim
        (folder / name).symlink_to(victim)
    dangling = {".m1.postprocessing.lock": outside / "created-by-model-lock"}
    for name, where in dangling.items():
        (folder / name).symlink_to(where)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0, proc.stderr
    for victim in victims.values():
        assert victim.read_text() == "keep me"
    assert sorted(p.name for p in outside.iterdir()) == sorted(v.name for v in victims.values())
    _assert_final(folder)
    assert not (folder / ".omz_verified.json").is_symlink()
    said = proc.stdout + proc.stderr
    for name in (".omz_verified.json", ".w.bin.lock", "w.bin.part.json"):
        assert name in said, name
    # The record is the tool's own again: a rerun trusts it and fetches nothing.
    rerun = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert rerun.returncode == 0, rerun.stderr
    assert len(server.requests_for("/m1/w.bin")) == 1


def test_fifo_at_part_is_removed_not_opened(tmp_path, server):
    reg, out, folder, outside = _setup(tmp_path, server)
    os.mkfifo(folder / "w.bin.part")  # opening it for writing would block forever
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, timeout=300)
    assert proc.returncode == 0, proc.stderr
    _assert_final(folder)
    assert "w.bin.part" in proc.stdout + proc.stderr


def test_cache_lock_and_staging_links_are_not_followed(tmp_path, server):
    reg, out, folder, outside = _setup(tmp_path, server)
    cache = tmp_path / "cache"
    digest = sha256(DATA)
    (cache / "locks").mkdir(parents=True)
    victim = outside / "victim-cache-lock"
    victim.write_text("keep me")
    (cache / "locks" / f"sha256-{digest}.lock").symlink_to(victim)
    # An entry that is a link to a good copy outside: never linked into the output folder.
    entry = cache / "sha256" / digest[:2] / digest[2:]
    entry.parent.mkdir(parents=True)
    outside_copy = outside / "copy.bin"
    outside_copy.write_bytes(DATA)
    entry.symlink_to(outside_copy)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--cache_dir", cache)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "keep me"
    assert outside_copy.read_bytes() == DATA
    _assert_final(folder)
    assert not entry.is_symlink() and entry.read_bytes() == DATA
    said = proc.stdout + proc.stderr
    assert "symbolic link" in said


def test_regex_and_unpack_working_names_are_not_followed(tmp_path, server):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("inner.txt", b"unpacked")
    reg, out = one_model(tmp_path, server, {"a.txt": b"hello world\n", "p.zip": buffer.getvalue()},
                         postprocessing=[
                             {"$type": "regex_replace", "file": "a.txt", "pattern": "world", "replacement": "there"},
                             {"$type": "unpack_archive", "file": "p.zip", "format": "zip"}])
    folder = out / "public" / "m1"
    folder.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text("keep me")
    (folder / "a.txt.regex-tmp").symlink_to(victim)
    (folder / ".p.zip.unpacking").symlink_to(outside)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (folder / "a.txt").read_text() == "hello there\n"
    assert (folder / "inner.txt").read_bytes() == b"unpacked"
