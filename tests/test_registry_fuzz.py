"""A property-based fuzz of model.yml (and composite-model.yml) over the three commands.

Each example writes a registry with one model whose keys hold either a valid value or a random
YAML fragment: every YAML type (null, booleans in YAML 1.1 spellings, integers in every base and of
thousands of digits, floats, .nan, .inf, dates valid and not, strings odd and long, binary data,
sets, ordered maps, unknown and Python tags), anchors and aliases (repeated, recursive, a "billion
laughs"), deep nesting, syntax errors. Then it runs, in-process through click's CliRunner so that
thousands of examples stay cheap:

- ``omz-info-dumper --name m``
- ``omz-downloader --name m --offline``
- ``omz-converter --name m --dry_run``

and asserts an exit code of 0, 1 or 2, no traceback, no exception escaping the command. Hangs would
show as a test that never ends (pytest's faulthandler_timeout prints the stacks).

The run is derandomised (the same examples every time) with a stated number of examples,
``OMZ_FUZZ_EXAMPLES`` (default 1200 models and 514 composites, about 5000 command runs); set it higher
to fuzz longer locally, e.g. ``OMZ_FUZZ_EXAMPLES=20000``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from omz_tools.cli import converter, downloader, info_dumper  # noqa: E402

EXAMPLES = int(os.environ.get("OMZ_FUZZ_EXAMPLES", "1200"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

SHA256 = "c97375db60ad04e1196966c7149bd5cc98fbb9a34bdde511c26c922ba791903d"
SHA384 = "0123456789abcdef" * 6
# No registry, mirror or offline setting leaks in from the developer's shell.
CLEAN_ENV = {"OMZ_REGISTRY": None, "OMZ_MIRROR": None, "OMZ_OFFLINE": None, "CI": "true"}

ODD_SCALARS = [
    "~", "null", "yes", "no", "on", "off", "Y", "true", "False", "0", "-1", "1_000", "0x1F", "0o17", "0b101",
    "017", "1:20:30", "190:20:30.15", "1e400", "-1e400", ".nan", ".inf", "-.inf", "1.5", "-0.0", "3.",
    "2020-01-01", "2020-13-45", "2001-12-14t21:59:43.10-05:00", "2020-02-30 25:61:61",
    "'9" + "9" * 50 + "'", "9" * 5000, "-" + "1" * 200, "0x" + "f" * 300, "1" * 99,
    "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [a: 1, b: 2]", "!!pairs [a: 1, a: 2]",
    "!!str 12", "!!int '12'", "!!null ''", "&r [a, *r]", "&q {k: *q}", "{<<: &m {a: 1}, b: *m}",
    "''", '""', "'\\u0000'", '"\\0\\x01\\e\\t"', '"\\u202e gnp.exe"', "'a\nb'",
    "'" + "x" * 3000 + "'", '"\\xff\\ud800"', "$dl_dir", "'$'", "'${dl_dir'", "'$$'", "'$mo_dir/../x'",
    "/etc/passwd", "'../../x'", "'C:/x'", "'\\\\server\\share'", "'.'", "'a/./b'", "'a//b'", "'~/x'",
    "w.part", ".w.lock", ".omz_verified.json", "x.part.json", "'FP32/m.xml'", "'FP16/m.bin'", "FP64/m.xml",
    "https://127.0.0.1:9/x", "'ftp://x/y'", "'javascript:alert(1)'", "'file:///etc/passwd'",
    "classification", "caffe", "caffe2", "mxnet", "kaldi", "dldt", "pytorch", "tf", "onnx", "paddle",
    "zip", "tar", "gztar", "rar", "regex_replace", "unpack_archive", "http", "google_drive", "sha256", "sha384",
    "md5", SHA256, SHA384, SHA256.upper(), "'" + SHA384[:-1] + "g'",
    "[" * 80 + "]" * 80, "{a: " * 40 + "1" + "}" * 40, "[[[[[[[[[[1]]]]]]]]]]",
]
# Fragments that make the whole file unreadable (syntax errors, tags that cannot be built): rarer,
# so that most examples reach the checks behind the parser.
BROKEN = ["[", "]", "{", "}", "{a: 1", "- a", "? a", "&", "*", "!", "|", ">", "%YAML 1.1", "'unterminated",
          "*undefined_alias", "!!binary '!!not base64'", "!!int 'x'", "!!float 'abc'", "!!bool maybe",
          "!!timestamp 'soon'", "!!python/object:os.system ls", "!!python/name:builtins.eval ''",
          "!custom {a: 1}", "!<tag:x,2000:y> 1", "{<<: 5}", "{<<: [1]}"]


def laughs(levels: int) -> str:
    """An inline "billion laughs": 10**levels strings from a few dozen bytes."""
    text = "&x0 'lol lol lol'"
    for i in range(1, levels + 1):
        text = f"[{text}, &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]]"
    return text


ANCHORS = (
    "anchors:\n"
    "  - &s 'shared string'\n"
    "  - &n 12\n"
    "  - &seq [1, 2, 3]\n"
    "  - &map {name: data, shape: [1, 3, 8, 8], layout: NCHW}\n"
)
ALIASES = ["*s", "*n", "*seq", "*map", laughs(2), laughs(4), laughs(9), "[*map, *map]", "{<<: *map, name: x}",
           "{<<: [*map, *map]}"]

json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                        st.text(max_size=30))
json_values = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4)),
    max_leaves=12)


def flow(value) -> str:
    """A Python value as one line of flow-style YAML."""
    import yaml
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=False).strip()
    return text[:-4].rstrip() if text.endswith("\n...") or text.endswith(" ...") else text.replace("\n...", "")


fragments = st.one_of(
    st.sampled_from(ODD_SCALARS), st.sampled_from(ODD_SCALARS), st.sampled_from(ODD_SCALARS),
    st.sampled_from(ALIASES),
    json_values.map(flow), json_values.map(flow),
    st.sampled_from(BROKEN),
    st.tuples(st.sampled_from(ODD_SCALARS + ALIASES), st.sampled_from(ODD_SCALARS + ALIASES)).map(
        lambda pair: f"[{pair[0]}, {pair[1]}]" if not pair[0].startswith(("!!", "*")) else f"[{pair[1]}]"),
)


def maybe(valid: str):
    """The valid fragment most of the time, else a random one, else the key left out (None)."""
    return st.one_of(st.just(valid), st.just(valid), st.just(valid), st.just(valid), fragments, st.just(None))


def mapping(items: dict) -> st.SearchStrategy:
    """A flow mapping of ``items`` (key -> strategy of fragment or None)."""
    def render(values: list) -> str:
        return "{" + ", ".join(f"{k}: {v}" for k, v in zip(items, values) if v is not None) + "}"
    return st.tuples(*items.values()).map(lambda values: render(list(values)))


file_entry = mapping({
    "name": maybe("m.onnx"), "size": maybe("3"), "sha256": maybe(SHA256),
    "checksum": st.one_of(st.none(), st.none(), st.just(SHA384), st.just(f"{{$type: sha384, value: {SHA384}}}"),
                          fragments),
    "source": st.one_of(st.just("https://127.0.0.1:9/m.onnx"), st.just("{$type: http, url: 'https://127.0.0.1:9/m'}"),
                        st.just("{$type: google_drive, id: ID}"), fragments),
})
port = mapping({"name": maybe("data"), "shape": maybe("[1, 3, 8, 8]"), "layout": maybe("NCHW"),
                "mean_values": maybe("[1.0, 2, 3]"), "mean_baked_in": maybe("true"), "kind": maybe("probabilities")})
model_card = mapping({"inputs": st.one_of(port.map(lambda p: f"[{p}]"), fragments),
                      "outputs": st.one_of(port.map(lambda p: f"[{p}]"), fragments),
                      "mparams": maybe("1.5"), "gflops": maybe("0.25"), "accuracy": maybe("{top1: 70.1, top5: 90}")})
postprocessing = st.one_of(
    mapping({"$type": maybe("regex_replace"), "file": maybe("m.onnx"), "pattern": maybe("'a+'"),
             "replacement": maybe("b"), "count": maybe("1")}).map(lambda m: f"[{m}]"),
    mapping({"$type": maybe("unpack_archive"), "file": maybe("m.onnx"), "format": maybe("zip")}).map(lambda m: f"[{m}]"),
    fragments)

model_keys = {
    "description": maybe("'A fuzzed model'"),
    "task_type": maybe("classification"),
    "framework": maybe("onnx"),
    "license": maybe("https://example.com/LICENSE"),
    "files": st.one_of(*[st.lists(file_entry, min_size=1, max_size=3).map(lambda fs: "[" + ", ".join(fs) + "]")] * 3,
                       fragments),
    "model_optimizer_args": maybe("['--input_model=$dl_dir/m.onnx', --input=data]"),
    "conversion_to_onnx_args": st.one_of(st.none(), st.none(), st.just("['--model-path=$dl_dir']"), fragments),
    "postprocessing": st.one_of(st.none(), postprocessing),
    "input_info": st.one_of(st.none(), port.map(lambda p: f"[{p}]"), port.map(lambda p: f"[{p}]"), fragments),
    "model_info": st.one_of(st.none(), maybe("{model_type: classification, labels: [a, b], iou_threshold: 0.5}")),
    "model_card": st.one_of(st.none(), model_card, model_card, fragments),
    "quantizable": st.one_of(st.none(), fragments),
    "name": st.one_of(st.none(), st.none(), st.none(), fragments),
    "stages_order": st.one_of(st.none(), st.none(), fragments),
}


ODD_KEYS = ["future_key", "? [a, b]", "1", "null", '"\\x00"', "description"]


@st.composite
def model_yml(draw) -> str:
    lines = [ANCHORS] if draw(st.integers(0, 4)) else []  # without them, aliases are undefined: a YAML error
    keys = list(model_keys)
    if draw(st.booleans()):
        keys = draw(st.permutations(keys))
    for key in keys:
        value = draw(model_keys[key])
        if value is not None:
            lines.append(f"{key}: {value}\n")
    for _ in range(draw(st.integers(0, 2))):  # unknown keys, odd keys
        key = draw(st.sampled_from(ODD_KEYS))
        lines.append(f"{key}: {draw(fragments)}\n")
    return "".join(lines)


def run_three(root: Path) -> None:
    runner = CliRunner()
    out = root / "out"
    for command, args in ((info_dumper.cli, []),
                          (downloader.cli, ["-o", str(out), "--offline"]),
                          (converter.cli, ["-d", str(out), "--dry_run"])):
        # "m,m-*", not "m*": the built-in registry, always searched, has mobilenet-* and mtcnn.
        result = runner.invoke(command, ["--name", "m,m-*", "--registry", str(root / "registry"), *args],
                               env=CLEAN_ENV, catch_exceptions=True)
        text = result.output
        assert result.exit_code in (0, 1, 2), (command.name, result.exit_code, text[-2000:], result.exc_info)
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            (command.name, repr(result.exception)[:2000])
        assert "Traceback" not in text, text[-2000:]
        assert len(text) < 1 << 20, f"{command.name} printed {len(text)} characters"


@FUZZ
@given(model_yml())
def test_fuzzed_model_yml(text):
    with tempfile.TemporaryDirectory(prefix="omz-fuzz-") as tmp:
        root = Path(tmp)
        config = root / "registry" / "public" / "m" / "model.yml"
        config.parent.mkdir(parents=True)
        config.write_text(text, encoding="utf-8", errors="surrogatepass")
        run_three(root)


composite_keys = {key: model_keys[key] for key in ("description", "task_type", "framework", "license")}
composite_keys["stages_order"] = st.one_of(st.none(), st.just("[m-a, m-b]"), st.just("[m-b]"), st.just("[]"),
                                           fragments)


@st.composite
def composite(draw) -> tuple:
    lines = [ANCHORS] if draw(st.booleans()) else []
    for key, strategy in composite_keys.items():
        value = draw(strategy)
        if value is not None:
            lines.append(f"{key}: {value}\n")
    return "".join(lines), draw(model_yml()), draw(st.sampled_from(["m-a", "m-b", "other", "m-a/deeper"]))


@settings(FUZZ, max_examples=max(1, EXAMPLES * 3 // 7))
@given(composite())
def test_fuzzed_composite_model(case):
    text, stage, second_stage = case
    with tempfile.TemporaryDirectory(prefix="omz-fuzz-") as tmp:
        root = Path(tmp)
        folder = root / "registry" / "public" / "m"
        (folder / "m-a").mkdir(parents=True)
        (folder / "composite-model.yml").write_text(text, encoding="utf-8", errors="surrogatepass")
        (folder / "m-a" / "model.yml").write_text(stage, encoding="utf-8", errors="surrogatepass")
        (folder / second_stage).mkdir(parents=True, exist_ok=True)
        (folder / second_stage / "model.yml").write_text(stage.replace("m.onnx", "n.onnx"), encoding="utf-8",
                                                         errors="surrogatepass")
        run_three(root)
