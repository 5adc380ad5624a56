"""The one way the tools read a YAML file: within bounds, whoever wrote it.

Every YAML file the tools read (a registry's ``model.yml`` and ``composite-model.yml``, a model's
``accuracy-check.yml``) goes through :func:`load`, which

- reads only a regular file (a FIFO never blocks, a device is not read: omz_tools.regularfile) of at
  most MAX_CONFIG_BYTES (4 MiB; Open Model Zoo's largest model.yml is about 21 kB, its largest
  accuracy-check.yml about 10 kB);
- parses it to a node graph with libyaml's safe loader and refuses, before any value is built:
  aliases that would add more than MAX_ALIAS_EXPANSION nodes and characters in all (a "billion
  laughs" file of a few hundred bytes otherwise expands to gigabytes), an alias inside its own
  anchor, nesting deeper than MAX_DEPTH, integers longer than MAX_INT_DIGITS digits;
- turns every PyYAML failure (syntax, a scalar that cannot be built) into one :class:`YamlBoundsError`.

The error carries ``problem`` ("expected ..., found ...") and, for a node, the dotted ``key`` where it
sits; each caller turns it into its own error class with the file's name. Imports only the standard
library until a file is loaded (then PyYAML).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from omz_tools import regularfile
from omz_tools.errors import OmzError
from omz_tools.wording import cut, quoted

MAX_CONFIG_BYTES = 4 << 20
MAX_ALIAS_EXPANSION = 100_000
MAX_DEPTH = 64  # levels of nesting (libyaml itself stops at 1000)
MAX_INT_DIGITS = 100  # Python refuses to read integers beyond 4300 digits, with a ValueError
_INT_TAG = "tag:yaml.org,2002:int"


class YamlBoundsError(OmzError):
    """A YAML file that cannot be read within the bounds: ``problem`` says what was expected and
    found, ``key`` (None for the file as a whole) where in the document."""

    def __init__(self, problem: str, key: Optional[str] = None):
        super().__init__(f"{key}: {problem}" if key else problem)
        self.problem, self.key = problem, key


def read_bytes(path: Path) -> bytes:
    """The bytes of a YAML file: a regular file of at most MAX_CONFIG_BYTES; else YamlBoundsError."""
    try:
        return regularfile.read(Path(path), MAX_CONFIG_BYTES, f"{MAX_CONFIG_BYTES >> 20} MiB")
    except regularfile.FileReadError as exc:
        raise YamlBoundsError(exc.problem) from None


def check_nodes(root) -> None:
    """Refuse, before anything is built from it, a YAML node graph that would expand without bound:
    aliases repeating more than MAX_ALIAS_EXPANSION nodes and characters in all, an alias inside its
    own anchor (a recursive value), nesting deeper than MAX_DEPTH, integers too long to read."""
    import yaml
    weights: dict = {}  # id(node) -> nodes + characters of its full expansion
    open_nodes: set = set()
    alias_weight = 0

    def where(node) -> str:
        mark = node.start_mark
        return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""

    def visit(node, key: str, depth: int) -> int:
        nonlocal alias_weight
        ident = id(node)
        if ident in open_nodes:
            raise YamlBoundsError(f"expected no recursive YAML alias, found an alias inside its own anchor (the "
                                  f"anchor{where(node)})", key or "(top level)")
        if ident in weights:  # a second appearance of a node: an alias to an anchor
            alias_weight += weights[ident]
            if alias_weight > MAX_ALIAS_EXPANSION:
                raise YamlBoundsError(f"expected YAML aliases to expand to at most {MAX_ALIAS_EXPANSION} nodes "
                                      f"and characters in all, found more (repeating the anchor{where(node)})",
                                      key or "(top level)")
            return weights[ident]
        if depth > MAX_DEPTH:
            raise YamlBoundsError(f"expected at most {MAX_DEPTH} levels of nesting, found more{where(node)}",
                                  key or "(top level)")
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS:
                raise YamlBoundsError(f"expected an integer of at most {MAX_INT_DIGITS} digits, found one of "
                                      f"{len(node.value)} characters{where(node)}", key or "(top level)")
            weight = 1 + len(node.value)
        else:
            open_nodes.add(ident)
            weight = 1
            if isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    weight += visit(item, f"{key}[{i}]", depth + 1)
            else:
                for name, value in node.value:
                    weight += visit(name, key, depth + 1)
                    part = name.value if isinstance(name, yaml.ScalarNode) else "?"
                    if len(part) > 40 or not part.isprintable():
                        part = quoted(part, 40)
                    weight += visit(value, f"{key}.{part}" if key else part, depth + 1)
            open_nodes.discard(ident)
        weights[ident] = weight
        return weight

    visit(root, "", 0)


def load(path: Path) -> Any:
    """The value of the YAML file at ``path`` (None for an empty document), read within the bounds;
    raises :class:`YamlBoundsError`."""
    import yaml
    text = read_bytes(path)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_nodes(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "unknown problem").split())
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise YamlBoundsError(f"expected valid YAML, found a syntax error{where}: {cut(problem)}{context}") from None
    except yaml.YAMLError as exc:
        raise YamlBoundsError(f"expected valid YAML, found a syntax error: {cut(' '.join(str(exc).split()))}") \
            from None
    except YamlBoundsError:
        raise
    except Exception as exc:  # noqa: BLE001 - PyYAML's constructors on untrusted text: ValueError,
        # KeyError (!!bool maybe), TypeError...: a scalar that cannot be built (2020-13-45 as a date).
        raise YamlBoundsError(f"expected YAML values that can be read, found one that cannot "
                              f"({cut(' '.join(str(exc).split()), 120)})") from None
    finally:
        loader.dispose()
