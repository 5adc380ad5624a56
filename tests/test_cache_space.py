"""Disk-space pre-check: needs per filesystem, a fake free-space figure, and a real small tmpfs."""

from __future__ import annotations


import pytest

from omz_tools.download.space import NotEnoughSpace, PlannedFile, check_space, free_bytes, needs

MiB = 1 << 20


def test_present_and_cached_files_need_nothing_on_one_filesystem(tmp_path):
    plan = [PlannedFile(10 * MiB), PlannedFile(5 * MiB, present=True), PlannedFile(7 * MiB, cached=True)]
    result = needs(plan, tmp_path / "out", tmp_path / "cache")
    assert list(result.values()) == [[10 * MiB, [tmp_path / "out", tmp_path / "cache"]]]


def test_refusal_names_need_free_and_folders(tmp_path):
    plan = [PlannedFile(10 * MiB), PlannedFile(3 * MiB)]
    with pytest.raises(NotEnoughSpace) as info:
        check_space(plan, tmp_path / "out" / "deep", tmp_path / "cache", free=lambda _p: 4 * MiB)
    message = str(info.value)
    assert "13.0 MiB" in message and "4.0 MiB" in message and str(tmp_path / "out" / "deep") in message
    assert str(tmp_path / "cache") in message and "add up" in message and "Nothing was downloaded" in message
    assert "\n" not in message


def test_enough_space_returns_the_need(tmp_path):
    assert check_space([PlannedFile(MiB, present=True), PlannedFile(2 * MiB)], tmp_path, None,
                       free=lambda _p: 2 * MiB) == 2 * MiB
    assert check_space([PlannedFile(MiB, present=True)], tmp_path, None, free=lambda _p: 0) == 0


def test_a_real_small_filesystem_refuses_and_a_separate_cache_counts_apart(small_tmpfs, tmp_path):
    assert free_bytes(small_tmpfs / "not" / "yet") <= 2 * MiB
    with pytest.raises(NotEnoughSpace, match=str(small_tmpfs)):
        check_space([PlannedFile(3 * MiB)], small_tmpfs / "out", None)
    # The cache elsewhere (the big disk) gets its own copy; the output still does not fit.
    result = needs([PlannedFile(3 * MiB)], small_tmpfs / "out", tmp_path / "cache")
    assert sorted(v[0] for v in result.values()) == [3 * MiB, 3 * MiB]
    # A hit from a cache on another filesystem is a copy into the output: it needs its size.
    with pytest.raises(NotEnoughSpace):
        check_space([PlannedFile(3 * MiB, cached=True)], small_tmpfs / "out", tmp_path / "cache")
    check_space([PlannedFile(MiB // 2)], small_tmpfs / "out", tmp_path / "cache")
