"""A property-based fuzz of accuracy-check.yml and of the dataset's annotation and label files.

- ``accuracy-check.yml``: the classification protocol's structure with each value either valid or a
  random YAML fragment (the registry fuzz's: every YAML type, aliases and "billion laughs", deep
  nesting, syntax errors, huge integers) is loaded with ``config.load``; what parses is applied to
  images of odd shapes (1x1, a 300x1 strip, grayscale, RGBA) with both readers. Expected: a
  Protocol or one AccuracyConfigError; a tensor or one ImageError.
- annotation and label files: lines of odd paths (NUL, control characters, ``..``, absolute, Unicode
  line separators), odd class indices (thousands of digits, negative, floats), non-UTF-8 bytes, and
  the file itself a FIFO, a link to /dev/zero or a folder; the images they name include a FIFO, a link
  to /dev/zero, a folder, a dangling link, a 64-byte BMP claiming 50000x50000 and broken files.
  Expected: samples or one DatasetError; each image a tensor or one ImageError.
- a few dozen runs of ``omz-accuracy-check`` itself (in-process, click's CliRunner) on the small net
  with a fuzzed accuracy-check.yml and annotation: exit 0, 1 or 2, no traceback.

Hangs would show as a test that never ends (pytest's faulthandler_timeout prints the stacks); peak
memory is checked against the process's own before and after. Derandomised (the same examples every
time); ``OMZ_FUZZ_EXAMPLES`` (default 1200) sets the number of examples of the first two properties.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from helpers_accuracy import NAME, accuracy_check_yml, build_small, needs_opencv  # noqa: E402
from helpers_memory import peak_rss_bytes, reset_peak  # noqa: E402
from test_hostile_images import bmp_bomb  # noqa: E402
from test_registry_fuzz import ANCHORS, fragments, mapping, maybe  # noqa: E402

pytestmark = pytest.mark.hostile_images

EXAMPLES = int(os.environ.get("OMZ_FUZZ_EXAMPLES", "1200"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
# Small bounds keep each example cheap; the code paths are those of the defaults.
SMALL_BOUNDS = {"OMZ_PREPROCESS_MAX_SIZE": "300", "OMZ_IMAGE_MAX_PIXELS": "200000", "OMZ_IMAGE_MAX_BYTES": "1M",
                "OMZ_ANNOTATION_MAX_BYTES": "256K"}
MIB = 1024  # _peak_kib is in KiB


def _peak_kib() -> int:
    """This process's peak since the last reset_peak() (its ru_maxrss would keep the peak of every
    earlier test, so a growth measured with it could not fail after a big one)."""
    return peak_rss_bytes() // 1024


# -- accuracy-check.yml --------------------------------------------------------------------------

def _steps_strategy():
    resize = mapping({"type": st.just("resize"), "size": maybe("72"), "dst_width": st.one_of(st.none(), fragments),
                      "aspect_ratio_scale": st.one_of(st.none(), st.sampled_from(["width", "height", "greater",
                                                                                   "fit_to_window"]), fragments),
                      "interpolation": st.one_of(st.none(), st.sampled_from(["LINEAR", "CUBIC", "BICUBIC", "NEAREST",
                                                                              "AREA", "LANCZOS"]), fragments),
                      "use_pillow": st.one_of(st.none(), st.just("true"), fragments)})
    crop = mapping({"type": st.just("crop"), "size": maybe("64"),
                    "central_fraction": st.one_of(st.none(), st.just("0.875"), fragments),
                    "use_pillow": st.one_of(st.none(), st.just("true"), fragments)})
    norm = mapping({"type": st.just("normalization"), "mean": maybe("'104, 117, 123'"), "std": maybe("[58, 57, 57]")})
    other = st.sampled_from(["{type: bgr_to_rgb}", "{type: rgb_to_bgr}"])
    step = st.one_of(resize, resize, crop, crop, norm, other, fragments)
    return st.one_of(st.lists(step, min_size=1, max_size=4).map(lambda s: "[" + ", ".join(s) + "]"), fragments)


metric = mapping({"type": maybe("accuracy"), "top_k": maybe("1"), "name": maybe("accuracy@top1"),
                  "reference": maybe("0.7"), "abs_threshold": st.one_of(st.none(), fragments)})
class_order = mapping({"name": maybe("test_classes"), "count": maybe("10"), "first": maybe("a"),
                       "sha256": maybe("'" + "0" * 64 + "'")})
dataset_entry = mapping({
    "name": maybe("test_classes"),
    "reader": st.one_of(st.none(), st.none(), st.sampled_from(["opencv_imread", "pillow_imread",
                                                                "{type: pillow_imread, to_rgb: true}"]), fragments),
    "preprocessing": _steps_strategy(),
    "metrics": st.one_of(st.lists(metric, min_size=1, max_size=2).map(lambda m: "[" + ", ".join(m) + "]"), fragments),
    "class_order": st.one_of(st.none(), st.none(), class_order, fragments),
})
launcher = mapping({"framework": maybe("dlsdk"), "device": st.one_of(st.none(), fragments),
                    "adapter": st.one_of(st.just("classification"),
                                         mapping({"type": maybe("classification"),
                                                  "output_blob": st.one_of(st.none(), st.just("prob"), fragments)}),
                                         fragments)})
model_entry = mapping({"name": maybe(NAME), "launchers": st.one_of(launcher.map(lambda x: f"[{x}]"), fragments),
                       "datasets": st.one_of(dataset_entry.map(lambda x: f"[{x}]"), fragments)})


@st.composite
def accuracy_yml(draw) -> str:
    head = ANCHORS if draw(st.integers(0, 4)) else ""
    models = draw(st.one_of(st.lists(model_entry, min_size=1, max_size=2).map(lambda m: "[" + ", ".join(m) + "]"),
                            fragments))
    extra = draw(st.one_of(st.none(), st.none(), st.none(), fragments))
    return head + f"models: {models}\n" + (f"evaluations: {extra}\n" if extra is not None else "")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    needs_opencv()
    import cv2
    folder = tmp_path_factory.mktemp("fuzz_images")
    rng = np.random.default_rng(0)
    made = []
    for name, shape in (("one.png", (1, 1, 3)), ("strip.png", (1, 300, 3)), ("odd.jpg", (23, 37, 3)),
                        ("gray.png", (40, 30)), ("rgba.png", (31, 45, 4))):
        assert cv2.imwrite(str(folder / name), rng.integers(0, 256, shape, dtype=np.uint8))
        made.append(folder / name)
    return made


def _check_protocol(path: Path, images: list) -> None:
    from omz_tools.accuracy.config import AccuracyConfigError, load
    from omz_tools.accuracy.preprocess import ImageError, prepare
    try:
        protocol = load(path)
    except AccuracyConfigError as exc:
        assert str(exc).startswith(str(path)) and len(str(exc)) < 2000, str(exc)[:3000]
        return
    for image in images:
        try:
            tensor = prepare(image, protocol.steps, [])
        except ImageError as exc:
            assert len(str(exc)) < 2000, str(exc)[:3000]
            continue
        assert tensor.dtype == np.float32 and tensor.ndim == 4 and tensor.shape[0] == 1


@FUZZ
@given(text=accuracy_yml())
def test_fuzzed_accuracy_check_yml_loads_or_is_one_error(images, monkeypatch, text):
    for name, value in SMALL_BOUNDS.items():
        monkeypatch.setenv(name, value)
    reset_peak()
    before = _peak_kib()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "accuracy-check.yml"
        path.write_text(text)
        _check_protocol(path, images)
    assert _peak_kib() - before < 512 * MIB


def _runs(text: str, image: Path) -> bool:
    from omz_tools.accuracy.config import AccuracyConfigError, load
    from omz_tools.accuracy.preprocess import ImageError, prepare
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "accuracy-check.yml"
        path.write_text(text)
        try:
            steps = load(path).steps
            return prepare(image, steps, []).ndim == 4
        except (AccuracyConfigError, ImageError):
            return False


def test_the_fuzz_reaches_preprocessing(images, monkeypatch):
    """The grammar makes protocols that run, not only refusals."""
    for name, value in SMALL_BOUNDS.items():
        monkeypatch.setenv(name, value)
    found = hypothesis.find(accuracy_yml(), lambda text: _runs(text, images[2]),
                            settings=settings(max_examples=2000, derandomize=True, database=None))
    assert "models:" in found


# -- annotation and label files ------------------------------------------------------------------

NAMES = ["img0.png", "img1.jpg", "fifo.png", "zero.jpg", "folder", "dangling.png", "loop.png", "bomb.bmp",
         "broken.png", "empty.jpg", "sub/img2.png", "../img0.png", "/etc/passwd", "img0.png\0x", "./img0.png",
         "sub//img2.png", "\u202egnp.exe", "a b c.png", "img0.PNG"]
ODD_INDICES = ["0", "1", "9", "10", "-1", "1.5", "1e3", "0x1", "9" * 5000, "٣", "", "+2", "1_0", "nan"]
line = st.one_of(
    st.tuples(st.sampled_from(NAMES), st.sampled_from([" ", "\t", "  ", " \x0b "]),
              st.one_of(st.sampled_from(ODD_INDICES), st.integers(-5, 20).map(str))).map("".join),
    st.text(max_size=40), st.sampled_from(["#", "# comment", "", "   ", "img0.png", "\u2028", "\x1c", "\r"]),
)
annotation_bytes = st.one_of(
    st.lists(line, max_size=8).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
    st.lists(line, max_size=4).map(lambda lines: ("\r\n".join(lines)).encode("utf-8", "surrogatepass") + b"\xff\xfe"),
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, images):
    import shutil
    root = tmp_path_factory.mktemp("fuzz_dataset")
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    shutil.copy(images[0], data / "img0.png")
    shutil.copy(images[2], data / "img1.jpg")
    shutil.copy(images[4], data / "sub" / "img2.png")
    os.mkfifo(data / "fifo.png")
    os.symlink("/dev/zero", data / "zero.jpg")
    (data / "folder").mkdir()
    os.symlink(data / "nowhere.png", data / "dangling.png")
    os.symlink(data / "loop.png", data / "loop.png")
    (data / "bomb.bmp").write_bytes(bmp_bomb())
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    (data / "empty.jpg").write_bytes(b"")
    os.mkfifo(root / "annotation.fifo")
    os.symlink("/dev/zero", root / "annotation.zero")
    return data


@FUZZ
@given(content=annotation_bytes, where=st.sampled_from(["file"] * 8 + ["fifo", "zero", "folder", "missing"]),
       classes=st.one_of(st.none(), st.integers(1, 12)), pillow=st.booleans())
def test_fuzzed_annotation_and_label_files_give_samples_or_one_error(dataset, monkeypatch, content, where,
                                                                     classes, pillow):
    from omz_tools.accuracy import dataset as ds
    from omz_tools.accuracy.config import ClassOrder, Step
    from omz_tools.accuracy.preprocess import ImageError, prepare
    for name, value in SMALL_BOUNDS.items():
        monkeypatch.setenv(name, value)
    reset_peak()
    before = _peak_kib()
    with tempfile.TemporaryDirectory() as tmp:
        path = {"fifo": dataset.parent / "annotation.fifo", "zero": dataset.parent / "annotation.zero",
                "folder": dataset, "missing": Path(tmp) / "missing.txt"}.get(where, Path(tmp) / "val.txt")
        if where == "file":
            path.write_bytes(content)
        try:
            samples = ds.read_annotation(path, dataset, classes)
        except ds.DatasetError as exc:
            assert len(str(exc)) < 2000, str(exc)[:3000]
            samples = []
        steps = (Step("read", {"library": "pillow", "mode": "RGB"}),) if pillow else ()
        for sample in samples[:4]:
            try:
                assert prepare(sample.path, steps, []).ndim == 4
            except ImageError as exc:
                assert str(sample.path) in str(exc) and len(str(exc)) < 2000, str(exc)[:3000]
        try:
            ds.check_class_order(path, ClassOrder("c", 3, "a", "0" * 64), NAME)
        except ds.DatasetError as exc:
            assert len(str(exc)) < 2000, str(exc)[:3000]
    assert _peak_kib() - before < 512 * MIB


# -- the command itself ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    needs_opencv()
    return build_small(tmp_path_factory.mktemp("fuzz_small"))


@settings(max_examples=max(10, EXAMPLES // 30), derandomize=True, deadline=None, database=None, print_blob=True,
          suppress_health_check=list(HealthCheck))
@given(text=st.one_of(accuracy_yml(), st.just(accuracy_check_yml())), content=annotation_bytes)
def test_fuzzed_runs_of_the_accuracy_check_end_in_an_exit_code(small, dataset, monkeypatch, text, content):
    from click.testing import CliRunner

    from omz_tools.cli import accuracy_check
    for name, value in SMALL_BOUNDS.items():
        monkeypatch.setenv(name, value)
    small.config.write_text(text)
    with tempfile.TemporaryDirectory() as tmp:
        annotation = Path(tmp) / "val.txt"
        annotation.write_bytes(content)
        result = CliRunner().invoke(accuracy_check.cli, [
            "--name", NAME, "--registry", str(small.registry), "-d", str(small.out), "--dataset", str(dataset),
            "--annotation", str(annotation), "--precisions", "FP32", "-j", "1"],
            env={"OMZ_REGISTRY": None, "CI": "true"}, catch_exceptions=True)
    small.config.write_text(accuracy_check_yml())
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output[-2000:], result.exc_info)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)[:2000]
    assert "Traceback" not in result.output, result.output[-2000:]
