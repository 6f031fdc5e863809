"""What a trained network needs around it: input size, normalisation, classes.

Stored inside the ONNX file (metadata property ``dice_seg_ros``, JSON) and in
torch checkpoints (key ``meta``), so a model can never be run with the wrong
pre-processing or class list. A network exported elsewhere carries none of
this; a sidecar YAML next to it (``model.onnx.yaml``, see ``read_sidecar``)
says the same things instead. Needs neither torch nor onnxruntime.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dice_seg_ros.errors import ModelError

ONNX_META_KEY = "dice_seg_ros"


@dataclass(frozen=True)
class ModelMeta:
    """Pre-processing contract and class list of a segmentation network.

    Attributes:
        input_width: network input width in pixels.
        input_height: network input height in pixels.
        mean: per-channel RGB mean subtracted after scaling pixels to 0..1.
        std: per-channel RGB standard deviation divided after the mean.
        class_names: class name per output channel (channel i = class id i).
        arch: network architecture name understood by ``dice_seg_ros.runtime.model``.
        arch_kwargs: keyword arguments that rebuild the architecture.
        color_order: channel order the network expects, ``"rgb"`` or ``"bgr"``.
        provenance: how the weights were made: training data with their
            licences, git commit, command line (see ``dice_seg_ros.learn.provenance``).
            Not part of equality: a resumed run has the same contract.

    """

    input_width: int
    input_height: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    class_names: tuple[str, ...]
    arch: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    color_order: str = "rgb"
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def num_classes(self) -> int:
        """Number of output channels (class ids 0..C-1)."""
        return len(self.class_names)

    @property
    def dynamic_size(self) -> bool:
        """Whether the network runs at each image's own resolution (a sidecar's 0 x 0)."""
        return self.input_width == 0

    def to_json(self) -> str:
        """Serialise to a JSON string."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model") -> "ModelMeta":
        """Build from a dict; raise ModelError naming ``source`` on missing keys."""
        try:
            return cls(
                input_width=int(data["input_width"]),
                input_height=int(data["input_height"]),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                class_names=tuple(str(n) for n in data["class_names"]),
                arch=str(data["arch"]),
                arch_kwargs=dict(data.get("arch_kwargs", {})),
                color_order=str(data.get("color_order", "rgb")),
                provenance=dict(data.get("provenance", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: invalid model metadata ({exc!r})") from exc

    @classmethod
    def from_json(cls, text: str, source: str = "model") -> "ModelMeta":
        """Parse the JSON written by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: model metadata is not valid JSON ({exc})") from exc
        return cls.from_dict(data, source)

    def check_classes(self, class_names: tuple[str, ...] | list[str], source: str) -> None:
        """Raise ModelError if the model's classes differ from ``class_names``."""
        if tuple(class_names) != self.class_names:
            raise ModelError(
                f"{source}: model has {self.num_classes} classes {list(self.class_names)} "
                f"but the classes file lists {len(class_names)}: {list(class_names)}")


SIDECAR_SUFFIX = ".yaml"
OUTPUT_KINDS = ("logits", "class_ids")
COLOR_ORDERS = ("rgb", "bgr")
DYNAMIC_SIZE = "dynamic"


@dataclass(frozen=True)
class Sidecar:
    """What a sidecar YAML says about a network exported elsewhere.

    Attributes:
        meta: input size, normalisation, colour order and the network's own
            class names (``arch`` is ``"external"``). A ``dynamic`` input size is
            stored as 0 x 0 and means: run at each image's own resolution.
        output: "logits" (float ``(N, C, H, W)``) or "class_ids" (integer
            ``(N, H, W)`` or ``(N, 1, H, W)``).
        class_colors: RGB colour per network class id.
        remap: network class name -> class name of the node's classes file, or
            empty when the network's classes are the node's classes.
        class_costs: traversability cost per network class id (-1 unknown, 0 free .. 100
            lethal), None where the sidecar gives none. Unused with a ``remap``: the node's
            classes file then gives the costs.

    """

    meta: ModelMeta
    output: str
    class_colors: tuple[tuple[int, int, int], ...]
    remap: dict[str, str] = field(default_factory=dict)
    class_costs: tuple[int | None, ...] = ()


def sidecar_path(model_path: str | Path) -> Path:
    """Return where the sidecar of ``model_path`` lives: ``model.onnx`` -> ``model.onnx.yaml``.

    The full file name plus ``.yaml`` (not ``model.yaml``) so a sidecar can never
    be mistaken for another file's, e.g. a ``model.pt`` next to ``model.onnx``.
    """
    path = Path(model_path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _field(doc: dict[str, Any], key: str, source: str, hint: str, where: str = "") -> Any:
    """Return ``doc[key]``; raise ModelError naming the file and the missing field.

    ``where`` prefixes the field's name for nested fields, e.g. ``"classes[2]."``.
    """
    if key not in doc:
        raise ModelError(f"{source}: sidecar field {where + key!r} is missing ({hint})")
    return doc[key]


def _triple(value: Any, key: str, source: str, kind: type = float) -> tuple:
    """Return ``value`` as a 3-tuple of ``kind``; raise ModelError naming ``key``."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ModelError(f"{source}: sidecar field {key!r} must be a list of 3 numbers, "
                         f"got {value!r}")
    try:
        return tuple(kind(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{source}: sidecar field {key!r}: {exc}") from exc


def _input_size(value: Any, graph_size: tuple[Any, Any], source: str) -> tuple[int, int]:
    """Return the network ``(width, height)`` in pixels; ``(0, 0)`` for dynamic.

    ``graph_size`` is the ONNX input's (height, width): ints where the graph
    fixes them. A fixed graph needs no sidecar size (and must agree with one).
    """
    height, width = graph_size
    fixed = isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0
    if value is None:
        if fixed:
            return width, height
        raise ModelError(f"{source}: sidecar field 'input_size' is missing (the graph's "
                         f"input size is dynamic: give [width, height] in pixels, or "
                         f"'{DYNAMIC_SIZE}' to run at each image's own size)")
    if value == DYNAMIC_SIZE:
        if fixed:
            raise ModelError(f"{source}: sidecar says input_size '{DYNAMIC_SIZE}' but the "
                             f"graph fixes it at {width}x{height} px")
        return 0, 0
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and v > 0 for v in value)):
        raise ModelError(f"{source}: sidecar field 'input_size' must be [width, height] in "
                         f"pixels or '{DYNAMIC_SIZE}', got {value!r}")
    if fixed and tuple(value) != (width, height):
        raise ModelError(f"{source}: sidecar input_size {list(value)} differs from the "
                         f"graph's fixed {width}x{height} px")
    return int(value[0]), int(value[1])


def _cost(entry: dict, where: str, source: str) -> int | None:
    """Parse a class's optional ``cost`` (-1 unknown, 0 free .. 100 lethal); None if absent."""
    cost = entry.get("cost")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int)
                             or not -1 <= cost <= 100):
        raise ModelError(f"{source}: sidecar {where}.cost {cost!r} is not an integer from -1 "
                         f"(unknown) to 100 (lethal)")
    return cost


def _classes(value: Any, source: str) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...],
                                               tuple[int | None, ...]]:
    """Parse ``classes: [{name, color, cost}, ...]`` (list index = network class id)."""
    if not isinstance(value, list) or not value:
        raise ModelError(f"{source}: sidecar field 'classes' must be a non-empty list of "
                         f"{{name, color}} in network class id order, got {value!r}")
    names, colors, costs = [], [], []
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise ModelError(f"{source}: sidecar classes[{index}] must be a mapping with "
                             f"name and color, got {entry!r}")
        where = f"classes[{index}]"
        names.append(str(_field(entry, "name", source, "the class name", f"{where}.")))
        color = _triple(_field(entry, "color", source, "[R, G, B] in 0..255", f"{where}."),
                        f"{where}.color", source, int)
        if not all(0 <= c <= 255 for c in color):
            raise ModelError(f"{source}: sidecar {where}.color {list(color)} is not in 0..255")
        colors.append(color)
        costs.append(_cost(entry, where, source))
    if len(set(names)) != len(names):
        raise ModelError(f"{source}: sidecar class names repeat: {names}")
    return tuple(names), tuple(colors), tuple(costs)


def _remap(value: Any, names: tuple[str, ...], source: str) -> dict[str, str]:
    """Parse ``remap: {network class: node class}``; every network class must be mapped."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ModelError(f"{source}: sidecar field 'remap' must map network class names "
                         f"to the node's class names, got {value!r}")
    remap = {str(k): str(v) for k, v in value.items()}
    unknown = sorted(set(remap) - set(names))
    if unknown:
        raise ModelError(f"{source}: sidecar remap names {unknown}, which are not in its "
                         f"classes {list(names)}")
    unmapped = [name for name in names if name not in remap]
    if unmapped:
        raise ModelError(f"{source}: sidecar remap does not say where network classes "
                         f"{unmapped} go")
    return remap


def read_sidecar(path: str | Path, graph_size: tuple[Any, Any] = (None, None)) -> Sidecar:
    """Read a sidecar YAML describing a network that carries no ``dice_seg_ros`` metadata.

    Fields: ``input_size`` ([width, height] px, or "dynamic"; optional when the
    graph fixes it), ``mean`` and ``std`` (per channel in the network's colour
    order, on pixels scaled to 0..1),
    ``color_order`` ("rgb" or "bgr", default "rgb"), ``classes`` (list of
    ``{name, color}`` in network class id order, each with an optional ``cost`` for the
    traversability grid), ``output`` ("logits" or
    "class_ids") and optional ``remap`` ({network class: node class}).

    Args:
        path: the sidecar file.
        graph_size: the ONNX input's (height, width), ints where fixed.

    Raises:
        ModelError: naming the file and the missing or invalid field.

    """
    import yaml

    path = Path(path)
    source = str(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ModelError(f"{source}: cannot read the sidecar YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ModelError(f"{source}: sidecar must be a YAML mapping, got {type(doc).__name__}")
    width, height = _input_size(doc.get("input_size"), graph_size, source)
    mean = _triple(_field(doc, "mean", source, "per-channel mean of pixels scaled to 0..1, "
                          "e.g. [0.485, 0.456, 0.406]"), "mean", source)
    std = _triple(_field(doc, "std", source, "per-channel std of pixels scaled to 0..1, "
                         "e.g. [0.229, 0.224, 0.225]"), "std", source)
    if min(std) <= 0:
        raise ModelError(f"{source}: sidecar std {list(std)} must be > 0")
    color_order = str(doc.get("color_order", "rgb")).lower()
    if color_order not in COLOR_ORDERS:
        raise ModelError(f"{source}: sidecar color_order {color_order!r} is not one of "
                         f"{COLOR_ORDERS}")
    output = str(_field(doc, "output", source, f"one of {OUTPUT_KINDS}"))
    if output not in OUTPUT_KINDS:
        raise ModelError(f"{source}: sidecar output {output!r} is not one of {OUTPUT_KINDS}")
    names, colors, costs = _classes(_field(doc, "classes", source,
                                           "list of {name, color} in network class id order"),
                                    source)
    meta = ModelMeta(input_width=width, input_height=height, mean=mean, std=std,
                     class_names=names, arch="external", color_order=color_order)
    return Sidecar(meta=meta, output=output, class_colors=colors,
                   remap=_remap(doc.get("remap"), names, source), class_costs=costs)
