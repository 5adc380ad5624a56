"""omz-accuracy-check on a small SE-ResNet converted by the project: preprocessing parity with an
independent OpenCV pipeline, top-k arithmetic on an annotation built from the IR's known
predictions, class-order checks, verdicts and exit codes, JSON events, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO_ROOT, SHARED_DIR, events, one_message
from helpers_accuracy import (
    CLASS_IDS, CROP, NAME, accuracy_check_yml, build_small, needs_opencv, reference_scores, run_cli,
    write_images,
)

pytestmark = pytest.mark.usefixtures("opencv")


@pytest.fixture(scope="module")
def opencv():
    needs_opencv()


@pytest.fixture(scope="module")
def small(tmp_path_factory, opencv):
    ns = build_small(tmp_path_factory.mktemp("acc"))
    ns.images = write_images(ns.root / "data" / "images", 20, seed=3)
    ns.scores = reference_scores(ns.irs["FP32"], ns.images)
    order = np.argsort(-ns.scores, axis=1, kind="stable")
    # 14 of 20 labels are the true top-1; 5 are ranked 2nd-5th (top-5 but not top-1); 1 is ranked last.
    labels = [int(order[i, 0]) for i in range(14)] + [int(order[i, 1 + (i - 14) % 4]) for i in range(14, 19)]
    labels.append(int(order[19, -1]))
    ns.labels = labels
    ns.annotation = ns.root / "data" / "val.txt"
    ns.annotation.write_text("".join(f"images/{p.name} {label}\n" for p, label in zip(ns.images, labels)))
    ns.dataset = ns.root / "data"
    return ns


def check(small, *args):
    return run_cli("omz-accuracy-check", "--name", NAME, "--registry", small.registry, "-d", small.out,
                   "--dataset", small.dataset, *args)


# -- preprocessing -------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_preprocessing_is_bit_for_bit_opencv(tmp_path, ext):
    """se-resnet-101's protocol (resize 256x256 INTER_LINEAR, center crop 224) against a plain OpenCV
    pipeline written here, on landscape, portrait and small images."""
    import cv2

    from omz_tools.accuracy import config, find_model
    from omz_tools.accuracy.preprocess import apply, prepare, read_image
    protocol = config.for_model(find_model("se-resnet-101"))
    for i, size in enumerate([(500, 375), (333, 500), (120, 90)]):
        path = write_images(tmp_path / f"s{i}", 1, ext=ext, size=size, seed=i)[0]
        expected = cv2.resize(cv2.imread(str(path)), (256, 256), interpolation=cv2.INTER_LINEAR)[16:240, 16:240]
        ours = apply(read_image(path), protocol.steps)
        assert ours.dtype == np.uint8 and ours.shape == (224, 224, 3)
        assert np.array_equal(ours, expected)
        tensor = prepare(path, protocol.steps, [1, 3, 224, 224])
        assert tensor.dtype == np.float32 and tensor.shape == (1, 3, 224, 224)
        assert np.array_equal(tensor[0], expected.transpose(2, 0, 1).astype(np.float32))


def test_normalization_bgr_to_rgb_and_aspect_ratio_steps(tmp_path):
    import cv2

    from omz_tools.accuracy.config import parse
    from omz_tools.accuracy.preprocess import apply, read_image
    path = write_images(tmp_path, 1, ext=".png", size=(200, 100), seed=5)[0]
    protocol = parse({"models": [{"name": "m", "launchers": [{"framework": "openvino", "adapter": "classification"}],
                                  "datasets": [{"name": "d", "metrics": [{"type": "accuracy", "top_k": 1}],
                                                "preprocessing": [
                                                    {"type": "resize", "size": 64, "aspect_ratio_scale": "greater"},
                                                    {"type": "crop", "dst_width": 60, "dst_height": 50},
                                                    {"type": "bgr_to_rgb"},
                                                    {"type": "normalization", "mean": "1, 2, 3", "std": 2}]}]}]},
                     tmp_path / "a.yml")
    image = cv2.imread(str(path))
    resized = cv2.resize(image, (128, 64), interpolation=cv2.INTER_LINEAR)  # shorter side to 64
    crop = resized[7:57, 34:94]
    expected = (cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) - np.float32([1, 2, 3])) / np.float32(2)
    assert np.array_equal(apply(read_image(path), protocol.steps), expected)


# -- arithmetic, verdicts, output -----------------------------------------------------------------

def test_top1_70_and_top5_95_exactly(small):
    proc = check(small, "--annotation", small.annotation, "--precisions", "FP32", "--progress_format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    evs = events(proc.stdout)
    assert evs[0]["$type"] == "accuracy_check_begin" and evs[0]["images"] == 20
    assert evs[0]["batch"] == 4  # the IR's batch dimension reshapes: 4 images per inference
    summary = evs[-1]
    assert summary["$type"] == "accuracy_check_summary" and summary["successful"] is True
    (fp32,) = summary["results"]
    metrics = {m["top_k"]: m for m in fp32["metrics"]}
    assert (metrics[1]["correct"], metrics[1]["value"]) == (14, 0.7)
    assert (metrics[5]["correct"], metrics[5]["value"]) == (19, 0.95)
    assert fp32["verdict"] == "ok" and fp32["evaluated"] == 20 and fp32["unreadable"] == 0
    assert metrics[1]["difference"] == pytest.approx(0.0, abs=1e-12)


def test_text_output_and_a_reference_missed_fails(small, tmp_path):
    proc = check(small, "--annotation", small.annotation, "--precisions", "FP32,FP16")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{NAME} FP32: 20/20 images, top-1 70.000 % (reference 70.000 %, +0.000), top-5 95.000 %" in proc.stdout
    assert "OK (within ±0.50 points)" in proc.stdout and "Summary:" in proc.stdout
    # The same images against references 5 points higher: beyond tolerance, exit 1.
    small.config.write_text(accuracy_check_yml(top1=0.75, top5=0.95))
    try:
        proc = check(small, "--annotation", small.annotation, "--precisions", "FP32")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "top-1 70.000 % (reference 75.000 %, -5.000)" in proc.stdout
        assert "FAILED (beyond ±0.50 points)" in proc.stdout
        proc = check(small, "--annotation", small.annotation, "--precisions", "FP32", "--tolerance", "5")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        small.config.write_text(accuracy_check_yml())


def test_batches_padded_and_across_unreadable_images_give_the_same_figures(small, tmp_path):
    """Batches of 3 over 20 readable images and 2 unreadable ones in the middle: 7 inferences, the last
    one padded; every image's ranks land on its own row."""
    (small.dataset / "notes.jpg").write_text("not an image at all")
    lines = small.annotation.read_text().splitlines(keepends=True)
    annotation = tmp_path / "ann.txt"
    annotation.write_text("".join(lines[:4]) + "notes.jpg 1\nmissing.png 2\n" + "".join(lines[4:]))
    try:
        proc = check(small, "--annotation", annotation, "--precisions", "FP32", "--batch", "3",
                     "--progress_format", "json")
    finally:
        (small.dataset / "notes.jpg").unlink()
    evs = events(proc.stdout)
    assert evs[0]["batch"] == 3
    result = evs[-1]["results"][0]
    assert (result["evaluated"], result["unreadable"], result["verdict"]) == (20, 2, "incomplete")
    assert [m["correct"] for m in result["metrics"]] == [14, 19]


@pytest.mark.parametrize("blocker", ["concat", "fold"])
def test_a_model_that_cannot_batch_runs_one_image_at_a_time(small, tmp_path, blocker):
    """IR that cannot take 4 images: a Concat with a constant of batch 1 (the reshape fails), or a sum
    over the batch (the output stays one row). Evaluated at batch 1, with the figures its own outputs give."""
    import openvino as ov
    import openvino.runtime.opset13 as ops
    rng = np.random.default_rng(0)
    data = ops.parameter([1, 3, CROP, CROP], np.float32, name="data")
    x = data
    if blocker == "concat":
        x = ops.concat([x, ops.constant(rng.uniform(0, 255, (1, 3, CROP, CROP)).astype(np.float32))], 1)
    else:
        x = ops.reduce_sum(x, ops.constant(np.array([0], dtype=np.int64)), True)
    pooled = ops.reduce_mean(x, ops.constant(np.array([2, 3], dtype=np.int64)), False)
    weights = rng.standard_normal((pooled.get_output_partial_shape(0)[1].get_length(), 10)).astype(np.float32) / 100
    prob = ops.softmax(ops.matmul(pooled, ops.constant(weights), False, False), 1)
    prob.output(0).set_names({"prob"})
    xml = tmp_path / "public" / NAME / "FP32" / f"{NAME}.xml"
    ov.save_model(ov.Model([prob], [data], "fixed"), str(xml))
    top1 = reference_scores(xml, small.images).argmax(axis=1)
    annotation = tmp_path / "ann.txt"
    annotation.write_text("".join(f"images/{p.name} {label if i < 15 else (label + 1) % 10}\n"
                                  for i, (p, label) in enumerate(zip(small.images, top1))))
    proc = run_cli("omz-accuracy-check", "--name", NAME, "--registry", small.registry, "-d", tmp_path,
                   "--dataset", small.dataset, "--annotation", annotation, "--tolerance", "100",
                   "--progress_format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    evs = events(proc.stdout)
    assert evs[0]["batch"] == 1
    assert evs[-1]["results"][0]["metrics"][0]["correct"] == 15


def test_limit_is_partial_and_not_compared(small):
    proc = check(small, "--annotation", small.annotation, "--precisions", "FP32", "--limit", "10",
                 "--progress_format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = events(proc.stdout)[-1]
    assert summary["partial"] is True and summary["results"][0]["verdict"] == "partial"
    assert summary["results"][0]["evaluated"] == 10 and summary["annotation_images"] == 20
    assert summary["results"][0]["metrics"][0]["correct"] == 10  # the first 10 labels are all top-1


def test_python_api_evaluates_every_precision_present(small):
    import omz_tools
    result = omz_tools.evaluate(NAME, dataset=small.dataset, annotation=small.annotation, converted_dir=small.out,
                                registries=[small.registry], jobs=2)
    assert list(result.results) == ["FP32", "FP16"] and result.ok
    assert result.results["FP32"].metric(1).value == 0.7 and result.results["FP32"].metric(5).value == 0.95
    assert result.results["FP16"].evaluated == 20


# -- class order ----------------------------------------------------------------------------------

def test_a_label_file_in_another_order_is_refused(small, tmp_path):
    right, wrong = tmp_path / "right.txt", tmp_path / "wrong.txt"
    right.write_text("".join(f"{i} class\n" for i in CLASS_IDS))
    wrong.write_text("".join(f"{i} class\n" for i in reversed(CLASS_IDS)))
    proc = check(small, "--annotation", small.annotation, "--precisions", "FP32", "--labels", right)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = check(small, "--annotation", small.annotation, "--precisions", "FP32", "--labels", wrong)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "its class order is not small-se-resnet's" in proc.stderr and f"index 0 {CLASS_IDS[-1]}" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_se_resnet_101_class_order_is_senets_not_the_2012_one():
    from omz_tools.accuracy import DatasetError, config, find_model
    from omz_tools.accuracy.dataset import check_class_order
    fixtures = SHARED_DIR / "fixtures"
    if not (fixtures / "imagenet_2015.txt").exists():
        pytest.skip(f"needs the ImageNet class lists in {fixtures} (../shared is absent)")
    protocol = config.load(REPO_ROOT / "models" / "public" / "se-resnet-101" / "accuracy-check.yml")
    check_class_order(fixtures / "imagenet_2015.txt", protocol.class_order, "se-resnet-101")
    with pytest.raises(DatasetError, match="index 0 is n02119789 kit fox.*index 0 n01440764"):
        check_class_order(fixtures / "imagenet_2012.txt", protocol.class_order, "se-resnet-101")
    assert config.for_model(find_model("se-resnet-101")).metrics[0].reference == 0.78252


# -- bad input ------------------------------------------------------------------------------------

def test_missing_dataset_folder(small, tmp_path):
    proc = run_cli("omz-accuracy-check", "--name", NAME, "--registry", small.registry, "-d", small.out,
                   "--dataset", tmp_path / "nowhere", "--annotation", small.annotation)
    one_message(proc, f"dataset folder {tmp_path / 'nowhere'} does not exist")


def test_unparsable_annotation_line(small, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text(f"images/{small.images[0].name} 3\nimages/{small.images[1].name} three\n")
    proc = check(small, "--annotation", bad)
    one_message(proc, f"annotation {bad} line 2", "expected an integer class index", "'three'")


def test_class_index_out_of_range(small, tmp_path):
    bad = tmp_path / "range.txt"
    bad.write_text(f"images/{small.images[0].name} 3\nimages/{small.images[1].name} 10\n")
    proc = check(small, "--annotation", bad)
    one_message(proc, f"annotation {bad} line 2", "class index 10 is out of range (expected 0-9, the model has 10")


def test_unreadable_images_are_counted_listed_and_fail_the_run(small, tmp_path):
    (small.dataset / "notes.jpg").write_text("not an image at all")
    annotation = tmp_path / "ann.txt"
    annotation.write_text(small.annotation.read_text() + "notes.jpg 1\nmissing.png 2\n")
    try:
        proc = check(small, "--annotation", annotation, "--precisions", "FP32", "--progress_format", "json")
    finally:
        (small.dataset / "notes.jpg").unlink()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    evs = events(proc.stdout)
    errors = [e for e in evs if e["$type"] == "accuracy_check_image_error"]
    assert sorted(e["image"].rsplit("/", 1)[1] for e in errors) == ["missing.png", "notes.jpg"]
    summary = evs[-1]
    result = summary["results"][0]
    assert (result["evaluated"], result["images"], result["unreadable"]) == (20, 22, 2)
    assert result["verdict"] == "incomplete" and result["metrics"][0]["correct"] == 14
    assert "not an image OpenCV can decode" in proc.stderr and "missing.png: no such file" in proc.stderr


def test_unsupported_protocol_feature_is_named(small):
    small.config.write_text(accuracy_check_yml(extra_steps="          - type: padding\n            size: 70\n"))
    try:
        proc = check(small, "--annotation", small.annotation)
    finally:
        small.config.write_text(accuracy_check_yml())
    one_message(proc, "accuracy-check.yml: models[1].datasets[0].preprocessing[2].type: the preprocessing step "
                      "'padding' is not supported")


def test_missing_ir_names_the_converter(small, tmp_path):
    proc = run_cli("omz-accuracy-check", "--name", NAME, "--registry", small.registry, "-d", tmp_path,
                   "--dataset", small.dataset, "--annotation", small.annotation)
    one_message(proc, "no FP32/FP16 IR of small-se-resnet", f"omz-converter --name {NAME} -o {tmp_path}")
