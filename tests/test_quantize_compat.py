"""The quantizer's start check of the openvino/NNCF pair (omz_tools/quantize/compat.py): the table
against the versions installed here, the message for a mismatched pair, and the extras that pin NNCF.
A real mismatched pair (the newest NNCF beside openvino-dev's openvino 2024.6, what
`pip install '.[mo,quantize]'` gives) is run end to end by .ci/run step 5, in a venv of its own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from omz_tools.quantize import compat

pytestmark = pytest.mark.native
ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_pair_passes():
    openvino, nncf = compat.installed("openvino"), compat.installed("nncf")
    assert openvino is not None
    assert compat.wanted(openvino) is not None, f"openvino {openvino} is older than the table"
    if nncf is None:
        pytest.skip(f"NNCF is not installed beside openvino {openvino} (the check then has nothing to pair)")
    assert compat.problem(openvino, nncf) == ""
    compat.check()  # the installed versions, as the quantizer checks them at start


def test_the_newest_nncf_beside_openvino_2024_6_is_refused_naming_the_release_to_install(monkeypatch):
    monkeypatch.delenv(compat.ENV, raising=False)
    with pytest.raises(compat.NNCFVersionError) as caught:
        compat.check("2024.6.0", "3.4.0")
    message = str(caught.value)
    assert message.startswith("nncf 3.4.0 does not go with openvino 2024.6.0")
    assert "nncf 3.4.0 is made for openvino 2026.4" in message
    assert "pip install 'nncf>=2.14.1,<2.15'" in message and "Nothing was done" in message
    assert "\n" not in message
    monkeypatch.setenv(compat.ENV, "off")
    compat.check("2024.6.0", "3.4.0")  # the documented way past it, for a pair tested by hand


@pytest.mark.parametrize("openvino, nncf, wanted", [
    ("2024.6.0", "2.14.1", ""),
    ("2024.6.0", "2.14.0", "nncf>=2.14.1,<2.15"),  # 2.14.0 is 2024.5's
    ("2025.0.0.dev20241212", "2.15.0", ""),
    ("2025.4.1", "2.19.0", ""),
    ("2026.4.1", "3.4.0", ""),
    ("2026.4.1", "2.15.0", "nncf>=3.4,<3.5"),  # measured: 'could not infer the backend' beside 2026
    ("2026.2.1", "3.2.0", ""),
    ("2027.1.0", "3.4.0", ""),  # newer than the table: the newest NNCF it knows, or later
    ("2027.1.0", "2.19.0", "nncf>=3.4"),
])
def test_pairs(openvino, nncf, wanted):
    problem = compat.problem(openvino, nncf)
    assert (problem == "") == (wanted == ""), problem
    if wanted:
        assert f"pip install '{wanted}'" in problem


def test_an_openvino_older_than_the_table_says_so():
    assert "older than omz-quantizer supports (openvino 2024.6" in compat.problem("2024.5.0", "2.14.0")


def test_the_table_has_one_nncf_range_per_openvino_and_no_gaps():
    releases = sorted(compat.PAIRS)
    for before, after in zip(releases, releases[1:]):
        assert compat.PAIRS[before][1] == compat.PAIRS[after][0], (before, after)
        assert compat.PAIRS[before][0] < compat.PAIRS[before][1]


def test_the_extras_pin_the_nncf_the_table_names():
    """[mo-quantize] and the test extra (both beside openvino-dev 2024.6) pin what the check wants."""
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11+")
    import tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = compat.requirement("2024.6.0")
    assert wanted == "nncf>=2.14.1,<2.15"
    assert f"{wanted}; python_version < '3.13'" in extras["mo-quantize"]
    assert "openvino-dev[caffe]==2024.6.0; python_version < '3.13'" in extras["mo-quantize"]
    assert wanted in extras["test"]
    assert extras["mo"] == ["openvino-dev[caffe]==2024.6.0; python_version < '3.13'"]
