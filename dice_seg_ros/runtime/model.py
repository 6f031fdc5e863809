"""The terrain segmentation network and its checkpoint format.

``TerrainNet`` is a compact encoder-decoder in the spirit of Fast-SCNN and
LR-ASPP: a MobileNetV2-style encoder down to 1/16 resolution with a global
context branch, and a light decoder that fuses 1/8 and 1/4 skip features
before a 1x1 classifier and a bilinear upsampling to the input size. About
0.13 M parameters, so it runs in real time on a laptop CPU through ONNX Runtime
and keeps the 1/4-resolution detail that small rocks need.

A checkpoint is a ``torch.save`` dict with ``"model"`` (state dict) and
``"meta"`` (``ModelMeta`` as a dict); training checkpoints add optimizer state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dice_seg_ros.errors import ModelError
from dice_seg_ros.runtime.model_meta import ModelMeta

ARCH = "terrain_net"
DEFAULT_WIDTHS = (16, 24, 40, 64)
DEFAULT_DECODER = 32
DEFAULT_INPUT_SIZE = (320, 240)
# ImageNet statistics: a common, harmless choice for RGB networks.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
            act: bool = True) -> nn.Sequential:
    """Conv2d (no bias) + BatchNorm + optional ReLU, 'same' padding."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise (stride), 1x1 project, residual."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: int = 4) -> None:
        super().__init__()
        hidden = cin * expand
        self.block = nn.Sequential(
            conv_bn(cin, hidden, 1),
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            conv_bn(hidden, cout, 1, act=False))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block; add the input when shapes allow."""
        out = self.block(x)
        return x + out if self.residual else out


def separable(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1 convolution, each with BN + ReLU."""
    return nn.Sequential(conv_bn(cin, cin, 3, stride, groups=cin), conv_bn(cin, cout, 1))


class TerrainNet(nn.Module):
    """Encoder-decoder returning logits (N, C, H, W) at the input size.

    Args:
        num_classes: output channels C.
        widths: channels at 1/2, 1/4, 1/8 and 1/16 resolution.
        decoder: decoder channels.

    """

    def __init__(self, num_classes: int, widths: Sequence[int] = DEFAULT_WIDTHS,
                 decoder: int = DEFAULT_DECODER) -> None:
        super().__init__()
        c2, c4, c8, c16 = widths
        self.stem = conv_bn(3, c2, 3, 2)
        self.down4 = separable(c2, c4, 2)
        self.down8 = nn.Sequential(InvertedResidual(c4, c8, 2), InvertedResidual(c8, c8))
        self.down16 = nn.Sequential(
            InvertedResidual(c8, c16, 2), InvertedResidual(c16, c16), InvertedResidual(c16, c16))
        # Global context (image-level pooling, as in PSPNet/LR-ASPP): tells every
        # pixel e.g. where the horizon is, cheaply.
        self.context = nn.Sequential(nn.Conv2d(c16, c16, 1), nn.ReLU(inplace=True))
        self.lateral8 = conv_bn(c8, decoder, 1)
        self.reduce16 = conv_bn(c16, decoder, 1)
        self.fuse8 = separable(decoder, decoder)
        self.lateral4 = conv_bn(c4, decoder, 1)
        self.fuse4 = separable(decoder, decoder)
        self.classifier = nn.Conv2d(decoder, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalised RGB (N, 3, H, W) to class logits (N, C, H, W)."""
        size = x.shape[-2:]
        f4 = self.down4(self.stem(x))
        f8 = self.down8(f4)
        f16 = self.down16(f8)
        f16 = f16 + self.context(f16.mean(dim=(2, 3), keepdim=True))
        y = _upsample(self.reduce16(f16), f8) + self.lateral8(f8)
        y = self.fuse8(y)
        y = _upsample(y, f4) + self.lateral4(f4)
        y = self.fuse4(y)
        return F.interpolate(self.classifier(y), size=size, mode="bilinear",
                             align_corners=False)


def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize ``x`` to the spatial size of ``like``."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def default_meta(class_names: Sequence[str], input_width: int = DEFAULT_INPUT_SIZE[0],
                 input_height: int = DEFAULT_INPUT_SIZE[1], **arch_kwargs: Any) -> ModelMeta:
    """Return the metadata of a default ``terrain_net`` for ``class_names``."""
    kwargs = {"widths": list(DEFAULT_WIDTHS), "decoder": DEFAULT_DECODER}
    kwargs.update(arch_kwargs)
    return ModelMeta(input_width=input_width, input_height=input_height,
                     mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     class_names=tuple(class_names), arch=ARCH, arch_kwargs=kwargs)


def build_model(meta: ModelMeta) -> nn.Module:
    """Build an untrained network described by ``meta``.

    Raises:
        ModelError: for an unknown architecture or bad architecture arguments.

    """
    if meta.arch != ARCH:
        raise ModelError(f"unknown model architecture {meta.arch!r}; known: [{ARCH!r}]")
    try:
        return TerrainNet(meta.num_classes, **meta.arch_kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"bad arguments for {meta.arch!r}: {meta.arch_kwargs} ({exc})") from exc


def checkpoint_dict(model: nn.Module, meta: ModelMeta, **extra: Any) -> dict[str, Any]:
    """Return the dict that :func:`save_checkpoint` writes (weights, meta, extras)."""
    return {"model": model.state_dict(), "meta": dict(vars(meta)), **extra}


def save_checkpoint(path: str | Path, model: nn.Module, meta: ModelMeta, **extra: Any) -> Path:
    """Write weights + meta (+ ``extra`` entries such as optimizer state) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint_dict(model, meta, **extra), path)
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"
                    ) -> dict[str, Any]:
    """Load a checkpoint dict, checking that it has ``model`` and ``meta`` entries.

    Raises:
        ModelError: naming the file if it is missing, unreadable or lacks entries.

    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    try:
        # weights_only: a checkpoint holds tensors and plain containers only, so
        # refusing arbitrary pickled objects costs nothing and is safer.
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ModelError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt or "meta" not in ckpt:
        raise ModelError(f"{path}: checkpoint lacks the 'model' and 'meta' entries")
    return ckpt


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    class_names: Sequence[str] | None = None) -> tuple[nn.Module, ModelMeta]:
    """Load a network and its metadata from a checkpoint, in eval mode.

    Args:
        path: checkpoint written by :func:`save_checkpoint` or ``dice-seg train``.
        map_location: device for the weights.
        class_names: when given, the model's classes must equal these.

    Raises:
        ModelError: naming the file if it is missing, corrupt, has weights that
            do not fit its architecture, or classes other than ``class_names``.

    """
    ckpt = read_checkpoint(path, map_location)
    meta = ModelMeta.from_dict(ckpt["meta"], source=str(path))
    if class_names is not None:
        meta.check_classes(class_names, str(path))
    model = build_model(meta)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit {meta.arch} ({exc})") from exc
    return model.to(map_location).eval(), meta
