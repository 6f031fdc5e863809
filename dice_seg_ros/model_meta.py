"""What a trained network needs around it: input size, normalisation, classes.

Stored inside the ONNX file (metadata property ``dice_seg_ros``, JSON) and in
torch checkpoints (key ``meta``), so a model can never be run with the wrong
pre-processing or class list. Needs neither torch nor onnxruntime.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
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
        arch: network architecture name understood by ``dice_seg_ros.model``.
        arch_kwargs: keyword arguments that rebuild the architecture.
        color_order: channel order the network expects, always ``"rgb"``.
        provenance: how the weights were made: training data with their
            licences, git commit, command line (see ``dice_seg_ros.provenance``).
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
