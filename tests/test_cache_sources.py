"""Mirror and offline settings: order, environment, URL building, bad values."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from omz_tools.download.sources import (
    SourceConfigError, candidates, check_mirror, mirror_url, mirrors_from, offline_from,
)
from omz_tools.registry import Checksum, FileSource, ModelFile


def model_file(name="se-resnet-101.prototxt", source=None) -> ModelFile:
    return ModelFile(PurePosixPath(name), 10, Checksum("sha256", "0" * 64),
                     source or FileSource("http", url="https://example.com/orig/x"))


def test_mirrors_then_the_original_in_order():
    got = candidates(PurePosixPath("public/se-resnet-101"), model_file(),
                     ["http://a.test/omz", "http://b.test"])
    assert [c.url for c in got] == [
        "http://a.test/omz/public/se-resnet-101/se-resnet-101.prototxt",
        "http://b.test/public/se-resnet-101/se-resnet-101.prototxt",
        "https://example.com/orig/x",
    ]
    assert [c.label for c in got] == ["mirror http://a.test/omz", "mirror http://b.test", "original"]
    assert [c.is_mirror for c in got] == [True, True, False]


def test_file_names_in_subfolders_and_odd_characters_are_encoded():
    assert mirror_url("http://m", PurePosixPath("intel/x y"), PurePosixPath("FP32/a#b.xml")) == \
        "http://m/intel/x%20y/FP32/a%23b.xml"


def test_google_drive_original_keeps_its_kind():
    got = candidates(PurePosixPath("public/m"), model_file(source=FileSource("google_drive", id="XYZ")),
                     ["http://m"])
    assert got[-1].kind == "google_drive" and got[-1].drive_id == "XYZ" and got[0].kind == "http"


def test_offline_means_no_candidates_at_all():
    assert candidates(PurePosixPath("public/m"), model_file(), ["http://m"], offline=True) == []


def test_command_line_mirrors_first_then_the_environment_without_duplicates():
    env = {"OMZ_MIRROR": "http://env1/ http://cli  http://env2"}
    assert mirrors_from(["http://cli/", "https://cli2/x/"], env) == \
        ["http://cli", "https://cli2/x", "http://env1", "http://env2"]
    assert mirrors_from((), {}) == []


@pytest.mark.parametrize("bad", ["ftp://m/x", "mirror.example", "http://", "http://m/?x=1"])
def test_bad_mirror_urls_are_usage_errors(bad):
    with pytest.raises(SourceConfigError, match="--mirror"):
        check_mirror(bad)


def test_offline_flag_and_environment():
    assert offline_from(True, {}) and offline_from(False, {"OMZ_OFFLINE": "1"})
    assert offline_from(False, {"OMZ_OFFLINE": "TRUE"}) and not offline_from(False, {"OMZ_OFFLINE": "0"})
    assert not offline_from(False, {})
    with pytest.raises(SourceConfigError, match="OMZ_OFFLINE"):
        offline_from(False, {"OMZ_OFFLINE": "maybe"})
