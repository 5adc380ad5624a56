"""Tensor names as Model Optimizer 2024.6 gives them to a Caffe net's IR.

MO names a tensor by the blobs its consumers read (each bottom edge carries its blob's name); measured on
its IR (tests/test_caffe_native_names.py):
- a blob's name goes to the tensor its last reader reads (an in-place chain ``conv1`` -> ``conv1`` names
  the last tensor read; MO also repeats it on earlier ones, we keep tensor names unique); a blob nothing
  reads names the tensor its last write gives;
- identities (Dropout, Split, a one-input Concat) merge their tops' names into their bottom's tensor;
- the tops of layers folded into a convolution (BatchNorm, Scale) vanish with their tensors;
- a default output whose tensor has no name (an in-place last layer: its blob is read, by itself)
  is named ``{layer, layer:port}``;
- ``--output=L`` (a layer, without a port) adds ``L`` to that tensor's names unless ``L`` is a
  blob's name or a BatchNorm/Scale layer (MO's fusion drops it);
- default outputs are ordered by "<layer>_<blob>" of the top that is the output (its blob named it in MO's
  graph; an unnamed one by "<layer>_<layer>:<port>"), as MO sorts them; ``--output``
  items in the order given, except those whose name is not among their tensor's names (ports, folded
  layers), which come first.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

from .reader import Net, Version

FUSED_AWAY = ("BatchNorm", "Scale")


def _key(value) -> Tuple[str, int]:
    return value.get_node().get_name(), value.get_index()


def tensor_names(net: Net, values: Dict[Version, object]) -> Dict[Tuple[str, int], Set[str]]:
    """Names per tensor (keyed by _key) for every blob version the translated layers produced, set on the
    tensors (outputs get theirs after)."""
    named: Dict[str, Version] = {}
    for layer in net.layers:  # the last write, then overridden by the last read below
        for version in layer.outputs:
            named[version[0]] = version
    read: Dict[str, Version] = {}
    for layer in net.layers:
        for version in layer.inputs:
            read[version[0]] = version
    named.update(read)
    names: Dict[Tuple[str, int], Set[str]] = {}
    tensors = {}
    for blob, version in named.items():
        if version in values:
            key = _key(values[version])
            names.setdefault(key, set()).add(blob)
            tensors[key] = values[version]
    for key, value in tensors.items():
        if value.get_node().get_type_name() != "Parameter":  # inputs keep the names build gave them
            value.get_tensor().set_names(names[key])
    return names


def _writers(net: Net) -> Dict[Version, str]:
    """version -> the Caffe layer that wrote it (for a folded run, its last layer, as MO records it)."""
    writers = {}
    for layer in net.layers:
        chain = getattr(layer, "fold_chain", None)
        for version in layer.outputs:
            writers[version] = chain[-1].name if chain else layer.name
    return writers


def _unnamed(value) -> Set[str]:
    """MO's names for an output tensor that has none: its operation's name, and that with the port."""
    node = value.get_node().get_friendly_name()
    return {node, f"{node}:{value.get_index()}"}


def default_outputs(net: Net, values: dict, names: dict) -> List[Tuple[Version, Set[str]]]:
    """(version, names) per default output (every version nothing reads), in MO's order."""
    read = {v for layer in net.layers for v in layer.inputs}
    writers = _writers(net)
    keyed = []
    for layer in net.layers:
        for version in layer.outputs:
            if version in read:
                continue
            value = values[version]
            own = names.get(_key(value))
            if own:
                keyed.append((f"{writers[version]}_{version[0]}", version, set(own)))
            else:
                unnamed = _unnamed(value)
                keyed.append((f"{min(unnamed, key=len)}_{max(unnamed, key=len)}", version, unnamed))
    keyed.sort(key=lambda item: item[0])
    return [(version, items) for _, version, items in keyed]


def user_name(net: Net, item: str) -> Optional[str]:
    """The layer an --output item names, if MO adds it to the tensor's names (a plain layer name that is
    no blob's name and no BatchNorm/Scale; measured: a port form 'L:N' adds nothing)."""
    blobs = set(net.inputs) | {b for layer in net.layers for b in list(layer.bottoms) + list(layer.tops)}
    layer = next((layer for layer in net.layers if layer.name == item), None)
    if layer is None or item in blobs or layer.type in FUSED_AWAY:
        return None
    return item


def requested_outputs(net: Net, items: List[Tuple[str, Version, Optional[str]]], values: dict,
                      names: dict) -> List[Tuple[Version, Set[str]]]:
    """(version, names) per --output item (item, version, user_name(item)), in MO's order. A top some
    layer reads also carries its blob's name (MO's Result takes that edge's name, even where the blob
    names a later tensor of an in-place chain too)."""
    read = {v for layer in net.layers for v in layer.inputs}
    first, rest = [], []
    for item, version, layer in items:
        own = set(names.get(_key(values[version]), set())) | ({version[0]} if version in read else set())
        if layer is not None:
            own.add(layer)
        own = own or _unnamed(values[version])
        (rest if item in own else first).append((version, own))
    return first + rest
