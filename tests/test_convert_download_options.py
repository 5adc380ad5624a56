"""The converter's --download and convert()/load() fetch with one DownloadOptions, built and checked
once, with everything the downloader reads (OMZ_MIN_RATE and OMZ_STALL_WINDOW included)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import omz_tools
from omz_tools.cli.converter import cli
from omz_tools.download import DownloadOptions


def test_a_bad_minimum_rate_in_the_environment_is_a_usage_error_with_download(tmp_path, monkeypatch):
    monkeypatch.setenv("OMZ_MIN_RATE", "fast")
    result = CliRunner().invoke(cli, ["--name", "se-resnet-101", "-d", str(tmp_path), "--download", "--dry_run"])
    assert result.exit_code == 2, result.output
    assert "OMZ_MIN_RATE" in result.output and "'fast'" in result.output
    assert "Traceback" not in result.output


def test_convert_takes_the_downloaders_rate_settings(tmp_path):
    with pytest.raises(ValueError, match="--min_rate"):
        omz_tools.convert("se-resnet-101", download_dir=tmp_path, download=True, min_rate="fast")
    with pytest.raises(ValueError, match="--stall_window"):
        omz_tools.load("se-resnet-101", download_dir=tmp_path, stall_window=-1)
    assert not any(tmp_path.iterdir())  # refused before anything was fetched or written


def test_download_options_are_resolved_once_from_arguments_then_environment(tmp_path):
    env = {"OMZ_MIRROR": "http://m.example", "OMZ_OFFLINE": "1", "OMZ_MIN_RATE": "2K", "OMZ_STALL_WINDOW": "5"}
    options = DownloadOptions.build(tmp_path, jobs=2, mirrors=["http://first.example"], env=env)
    assert options.mirrors == ("http://first.example", "http://m.example") and options.offline
    assert options.limits.min_rate == 2048 and options.limits.stall_window == 5
    with pytest.raises(Exception):  # frozen: what a run was asked cannot change under it
        options.jobs = 3
