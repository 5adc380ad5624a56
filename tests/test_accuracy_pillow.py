"""Open Model Zoo's Pillow steps (reader ``pillow_imread``, ``use_pillow`` resize and crop,
``rgb_to_bgr``), parsed from accuracy-check.yml text and run by omz_tools.accuracy.preprocess, against
an independent pipeline written here from the accuracy checker's code (data_readers/image_readers.py
PillowImageReader, preprocessor/resize.py _PillowResizer and the aspect-ratio formulas,
preprocessor/crop.py Crop with use_pillow, color_space_conversion.py), bit for bit, with real Pillow
and OpenCV on JPEG and PNG files written here (RGB, grayscale, palette with transparency, RGBA)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

PIL = pytest.importorskip("PIL", reason="needs Pillow: pip install -e '.[test]'")
cv2 = pytest.importorskip("cv2", reason="needs OpenCV: pip install -e '.[test]' (opencv-python-headless)")
from PIL import Image  # noqa: E402

from omz_tools.accuracy.config import AccuracyConfigError, parse  # noqa: E402
from omz_tools.accuracy import preprocess  # noqa: E402
from omz_tools.accuracy.preprocess import ImageError, apply, prepare  # noqa: E402

# -- the accuracy checker, transcribed --------------------------------------------------------------

_R, _D = Image.Resampling, Image.Dither
OMZ_PILLOW = {"NEAREST": _R.NEAREST, "NONE": _D.NONE, "BILINEAR": _R.BILINEAR, "LINEAR": _R.BILINEAR,
              "BICUBIC": _R.BICUBIC, "CUBIC": _R.BICUBIC, "BOX": _R.BOX, "LANCZOS": _R.LANCZOS,
              "ANTIALIAS": _R.LANCZOS, "HAMMING": _R.HAMMING}


def omz_scale(kind, dst_width, dst_height, image_width, image_height):
    def width(w, h, iw, ih):
        return int(w * iw / ih), h

    def height(w, h, iw, ih):
        return w, int(h * ih / iw)

    if kind is None:
        return dst_width, dst_height
    if kind == "width":
        return width(dst_width, dst_height, image_width, image_height)
    if kind == "height":
        return height(dst_width, dst_height, image_width, image_height)
    if kind == "greater":
        f = height if image_height > image_width else width
        return f(dst_width, dst_height, image_width, image_height)
    im_scale = min(dst_height / image_height, dst_width / image_width)  # fit_to_window
    return int(im_scale * image_width), int(im_scale * image_height)


def omz_pillow_read(path):
    with open(str(path), "rb") as f:
        img = Image.open(f)
        return np.array(img.convert("RGB"))


def omz_pillow_resize(data, dst_width, dst_height, scale, interpolation="BILINEAR"):
    image_h, image_w = data.shape[:2]
    new_w, new_h = omz_scale(scale, dst_width, dst_height, image_w, image_h)
    data = np.array(Image.fromarray(data).resize((new_w, new_h), OMZ_PILLOW[interpolation]))
    return np.expand_dims(data, -1) if data.ndim == 2 else data


def omz_pillow_crop(data, dst_height=None, dst_width=None, central_fraction=None):
    height, width = data.shape[:2]
    if central_fraction:
        new_height, new_width = int(height * central_fraction), int(width * central_fraction)
    else:
        new_height, new_width = dst_height, dst_width
    i = int(round((height - new_height) / 2.))
    j = int(round((width - new_width) / 2.))
    return np.array(Image.fromarray(data).crop((j, i, j + new_width, i + new_height)))


def omz_opencv_crop(data, size):
    height, width = data.shape[:2]
    top, left = (height - size) // 2, (width - size) // 2
    return data[top:top + size, left:left + size]


# -- files and configs -------------------------------------------------------------------------------

def smooth(width, height, seed, channels=3):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (4, 5, channels)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels)
    image += rng.normal(0, 10, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def write(path, width, height, seed, mode="RGB"):
    """A file written by Pillow in ``mode`` (RGB, L, RGBA, or P with a transparent index)."""
    if mode == "L":
        image = Image.fromarray(smooth(width, height, seed, 1)[:, :, 0])
    elif mode == "RGBA":
        image = Image.fromarray(smooth(width, height, seed, 4), "RGBA")
    else:
        image = Image.fromarray(smooth(width, height, seed))
        if mode == "P":
            image = image.quantize(colors=16)
            image.info["transparency"] = 3
    image.save(path, **({"quality": 90} if path.suffix == ".jpg" else {}))
    return path


SIZES = [(300, 200), (199, 257), (255, 255), (97, 61)]


def protocol(tmp_path, steps, reader=None):
    dataset = f"reader: {reader}\n" if reader else ""
    text = textwrap.dedent("""\
        models:
          - name: m
            launchers:
              - framework: openvino
                adapter: classification
            datasets:
              - name: d
        """) + textwrap.indent(dataset + "preprocessing:\n" + textwrap.indent(steps, "  ") +
                               "metrics:\n  - type: accuracy\n    top_k: 1\n", " " * 8)
    return parse(yaml.safe_load(text), tmp_path / "accuracy-check.yml")


def run(tmp_path, path, steps, reader=None):
    image, rest = preprocess.read(path, protocol(tmp_path, steps, reader).steps)
    return apply(image, rest)


# -- reader ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,mode", [("a.jpg", "RGB"), ("b.png", "RGB"), ("gray.png", "L"),
                                       ("gray.jpg", "L"), ("palette.png", "P"), ("alpha.png", "RGBA")])
@pytest.mark.parametrize("reader", ["pillow_imread", "{type: pillow_imread}", "{type: pillow_imread, to_rgb: true}"])
def test_pillow_reader_is_omz_pillow_imread(tmp_path, name, mode, reader):
    path = write(tmp_path / name, 120, 90, seed=len(name), mode=mode)
    ours = run(tmp_path, path, "- {type: crop, size: 80, use_pillow: true}\n", reader)
    expected = omz_pillow_crop(omz_pillow_read(path), 80, 80)
    assert ours.dtype == np.uint8 and ours.shape == (80, 80, 3)
    assert np.array_equal(ours, expected)


def test_pillow_reader_gives_rgb_and_rgb_to_bgr_gives_bgr(tmp_path):
    """A lossless file with a red left half: Pillow's reader gives R first; OpenCV's reader B first;
    rgb_to_bgr after Pillow's reader gives OpenCV's order, and the IR tensor's channel 2 is red."""
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:, :30] = (255, 0, 0)
    pixels[:, 30:] = (0, 0, 200)
    path = tmp_path / "rb.png"
    Image.fromarray(pixels).save(path)
    assert np.array_equal(run(tmp_path, path, "- {type: crop, size: 40, use_pillow: true}\n", "pillow_imread"),
                          pixels[:, 10:50])
    steps = "- {type: crop, size: 40, use_pillow: true}\n- {type: rgb_to_bgr}\n"
    bgr = run(tmp_path, path, steps, "pillow_imread")
    assert np.array_equal(bgr, cv2.imread(str(path))[:, 10:50])
    tensor = prepare(path, protocol(tmp_path, steps, "pillow_imread").steps, [1, 3, 40, 40])
    assert tensor.shape == (1, 3, 40, 40) and tensor.dtype == np.float32
    assert tensor[0, 2, 0, 0] == 255 and tensor[0, 0, 0, 0] == 0 and tensor[0, 0, 0, -1] == 200


def test_an_undecodable_file_is_one_image_error(tmp_path):
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"not an image at all")
    steps = protocol(tmp_path, "- {type: crop, size: 8, use_pillow: true}\n", "pillow_imread").steps
    with pytest.raises(ImageError, match=r"bad\.jpg: not an image Pillow can decode"):
        prepare(path, steps, [1, 3, 8, 8])
    with pytest.raises(ImageError, match="no such file"):
        prepare(tmp_path / "missing.png", steps, [1, 3, 8, 8])
    for name in ("cut.png", "cut.jpg"):
        whole = write(tmp_path / name, 64, 64, seed=2).read_bytes()
        (tmp_path / name).write_bytes(whole[:len(whole) // 2])
        with pytest.raises(ImageError, match=rf"{name.replace('.', '[.]')}: not an image Pillow can decode \(\d+ bytes: "):
            prepare(tmp_path / name, steps, [1, 3, 8, 8])


# -- resize ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("interpolation", sorted(OMZ_PILLOW) + [None])
def test_pillow_resize_is_omz_for_every_filter_name_and_aspect_ratio(tmp_path, interpolation):
    for k, (width, height) in enumerate(SIZES):
        path = write(tmp_path / f"s{k}.jpg", width, height, seed=k)
        source = omz_pillow_read(path)
        for scale in (None, "width", "height", "greater", "fit_to_window"):
            for dst in ((64, 64), (96, 48)):
                step = f"- {{type: resize, dst_width: {dst[0]}, dst_height: {dst[1]}, use_pillow: true"
                step += f", aspect_ratio_scale: {scale}" if scale else ""
                step += f", interpolation: {interpolation}" if interpolation else ""
                ours = run(tmp_path, path, step + "}\n", "pillow_imread")
                expected = omz_pillow_resize(source, dst[0], dst[1], scale, interpolation or "BILINEAR")
                assert ours.shape == expected.shape and np.array_equal(ours, expected), (width, height, scale, dst)


def test_pillow_resize_differs_from_opencv_and_keeps_bgr_order(tmp_path):
    """hbonet's protocol: OpenCV's reader (BGR), a Pillow resize, an OpenCV crop."""
    path = write(tmp_path / "a.jpg", 300, 200, seed=9)
    steps = ("- {type: resize, size: 256, aspect_ratio_scale: greater, interpolation: BILINEAR, use_pillow: True}\n"
             "- {type: crop, size: 224}\n")
    ours = run(tmp_path, path, steps)
    expected = omz_opencv_crop(omz_pillow_resize(cv2.imread(str(path)), 256, 256, "greater"), 224)
    assert ours.shape == (224, 224, 3) and np.array_equal(ours, expected)
    with_opencv = run(tmp_path, path, steps.replace(", use_pillow: True", ""))
    assert not np.array_equal(ours, with_opencv)


# -- crop --------------------------------------------------------------------------------------------

def test_pillow_crop_rounds_half_to_even_where_opencv_floors(tmp_path):
    """255 - 224 = 31: the box starts at round(15.5) = 16 where the OpenCV crop starts at 15; at 257 - 224
    the two agree (round(16.5) = 16); at 261 - 224 round(18.5) = 18, banker's rounding."""
    for size, start in ((255, 16), (257, 16), (261, 18), (224, 0)):
        path = write(tmp_path / f"c{size}.png", size, size, seed=size)
        source = omz_pillow_read(path)
        ours = run(tmp_path, path, "- {type: crop, size: 224, use_pillow: true}\n", "pillow_imread")
        assert np.array_equal(ours, omz_pillow_crop(source, 224, 224))
        assert np.array_equal(ours, source[start:start + 224, start:start + 224])


def test_pillow_crop_of_a_small_image_pads_with_zeros(tmp_path):
    path = write(tmp_path / "small.png", 97, 61, seed=4)
    source = omz_pillow_read(path)
    ours = run(tmp_path, path, "- {type: crop, dst_width: 120, dst_height: 80, use_pillow: true}\n", "pillow_imread")
    assert ours.shape == (80, 120, 3) and np.array_equal(ours, omz_pillow_crop(source, 80, 120))
    top, left = int(round(-19 / 2)), int(round(-23 / 2))  # -10 (half to even), -12
    assert not ours[:-top].any() and not ours[:, :-left].any()
    assert np.array_equal(ours[-top:-top + 61, -left:-left + 97], source)


def test_efficientnet_b0_protocol_central_fraction_then_bicubic(tmp_path):
    """efficientnet-b0 and mixnet-l: OpenCV's reader, Pillow crop of the central 87.5 %, Pillow BICUBIC."""
    steps = ("- {type: crop, central_fraction: 0.875, use_pillow: True}\n"
             "- {type: resize, size: 224, use_pillow: True, interpolation: BICUBIC}\n")
    for k, (width, height) in enumerate(SIZES):
        path = write(tmp_path / f"e{k}.jpg", width, height, seed=k)
        expected = omz_pillow_resize(omz_pillow_crop(cv2.imread(str(path)), central_fraction=0.875),
                                     224, 224, None, "BICUBIC")
        assert np.array_equal(run(tmp_path, path, steps), expected)


@pytest.mark.parametrize("order", ["before", "after"])
def test_pytorch_protocol_through_prepare(tmp_path, order):
    """resnet-50-pytorch (rgb_to_bgr last) and dla-34 (rgb_to_bgr first): the IR's NCHW tensor."""
    resize = "- {type: resize, size: 256, aspect_ratio_scale: greater, use_pillow: true, interpolation: BICUBIC}\n"
    crop = "- {type: crop, size: 224, use_pillow: true}\n"
    steps = ("- {type: rgb_to_bgr}\n" + resize + crop) if order == "before" else (resize + crop + "- {type: rgb_to_bgr}\n")
    for k, (width, height) in enumerate(SIZES[:3]):
        path = write(tmp_path / f"p{k}.jpg", width, height, seed=k)
        rgb = omz_pillow_crop(omz_pillow_resize(omz_pillow_read(path), 256, 256, "greater", "BICUBIC"), 224, 224)
        tensor = prepare(path, protocol(tmp_path, steps, "pillow_imread").steps, [1, 3, 224, 224])
        assert np.array_equal(tensor[0], rgb[:, :, ::-1].transpose(2, 0, 1).astype(np.float32))


# -- what is refused, and a missing Pillow -----------------------------------------------------------

@pytest.mark.parametrize("steps,reader,key,says", [
    ("- {type: resize, size: 8, use_pillow: true, interpolation: AREA}\n", None, "preprocessing[0].interpolation",
     "Pillow's are NEAREST, NONE, BILINEAR"),
    ("- {type: resize, size: 8}\n- {type: crop, size: 4, use_pillow: true}\n", None, "preprocessing[1].use_pillow",
     "float32 pixels Pillow cannot take"),
    ("- {type: normalization, mean: 1}\n- {type: resize, size: 4, use_pillow: true}\n", None,
     "preprocessing[1].use_pillow", "float32 pixels Pillow cannot take"),
    ("- {type: crop, size: 4, use_pillow: 'yes'}\n", None, "preprocessing[0].use_pillow",
     "expected true or false, found 'yes'"),
    ("- {type: crop, size: 4}\n", "{type: pillow_imread, to_rgb: false}", "reader.to_rgb", "to_rgb: False"),
    ("- {type: crop, size: 4}\n", "scipy_imread", "reader", "the opencv_imread and pillow_imread readers"),
])
def test_what_omz_would_not_do_is_refused_by_key(tmp_path, steps, reader, key, says):
    with pytest.raises(AccuracyConfigError) as caught:
        protocol(tmp_path, steps, reader)
    message = str(caught.value)
    assert f"models[0].datasets[0].{key}: " in message and says in message and "\n" not in message


def test_without_pillow_a_pillow_config_says_how_to_install_it(tmp_path):
    config = tmp_path / "accuracy-check.yml"
    config.write_text("models:\n- name: m\n  launchers: [{framework: openvino, adapter: classification}]\n"
                      "  datasets:\n  - name: d\n    reader: pillow_imread\n    preprocessing: [{type: crop, size: 4}]\n"
                      "    metrics: [{type: accuracy, top_k: 1}]\n")
    code = ("import sys; sys.modules['PIL'] = None\n"  # as if Pillow were not installed
            "from omz_tools.accuracy import config\n"
            "try:\n    config.load(sys.argv[1])\nexcept config.AccuracyConfigError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "asks for Pillow" in done.stdout and "pip install 'omz-model-tools[accuracy]'" in done.stdout


# -- end to end --------------------------------------------------------------------------------------

def test_accuracy_check_with_a_pytorch_style_pillow_protocol(tmp_path):
    """omz-accuracy-check on the small converted net with resnet-50-pytorch's protocol shape
    (pillow_imread, Pillow resize greater BICUBIC, Pillow crop, rgb_to_bgr): top-1 is exactly what
    the transcribed pipeline and the IR predict (15 labels are its top-1, 5 its second choice)."""
    import openvino as ov

    from conftest import events
    from helpers_accuracy import CLASS_IDS, CROP, NAME, build_small, class_order_sha256, run_cli
    from helpers_caffe import SMALL_CLASSES
    ns = build_small(tmp_path)
    ns.config.write_text(textwrap.dedent(f"""\
        models:
          - name: {NAME}
            launchers:
              - framework: openvino
                adapter: classification
            datasets:
              - name: test_classes
                reader: pillow_imread
                preprocessing:
                  - {{type: resize, size: 70, aspect_ratio_scale: greater, use_pillow: true, interpolation: BICUBIC}}
                  - {{type: crop, size: {CROP}, use_pillow: true}}
                  - {{type: rgb_to_bgr}}
                metrics:
                  - {{type: accuracy, top_k: 1, reference: 0.75}}
                class_order: {{name: test_classes, count: {SMALL_CLASSES}, first: {CLASS_IDS[0]},
                               sha256: {class_order_sha256(CLASS_IDS)}}}
        """))
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    paths = [write(images / f"i{k}.jpg", 90 + 7 * k, 75 + 5 * (k % 4), seed=k) for k in range(20)]
    compiled = ov.Core().compile_model(str(ns.irs["FP32"]), "CPU")
    labels = []
    for k, path in enumerate(paths):
        rgb = omz_pillow_crop(omz_pillow_resize(omz_pillow_read(path), 70, 70, "greater", "BICUBIC"), CROP, CROP)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        scores = compiled(bgr.transpose(2, 0, 1)[None].astype(np.float32))[compiled.outputs[0]].reshape(-1)
        order = np.argsort(-scores, kind="stable")
        labels.append(int(order[0] if k < 15 else order[1]))
    annotation = tmp_path / "data" / "val.txt"
    annotation.write_text("".join(f"images/{p.name} {label}\n" for p, label in zip(paths, labels)))
    proc = run_cli("omz-accuracy-check", "--name", NAME, "--registry", ns.registry, "-d", ns.out,
                   "--dataset", tmp_path / "data", "--annotation", annotation, "--precisions", "FP32",
                   "--progress_format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (fp32,) = events(proc.stdout)[-1]["results"]
    assert fp32["evaluated"] == 20 and fp32["unreadable"] == 0
    assert (fp32["metrics"][0]["correct"], fp32["metrics"][0]["value"]) == (15, 0.75)
