"""Export a checkpoint to ONNX with its metadata and verify it against PyTorch.

``dice-seg export --checkpoint C --out model.onnx`` writes an ONNX graph with
dynamic batch, height and width axes (the network is fully convolutional, so
``input_width``/``input_height`` overrides work in ONNX Runtime too), stores
``ModelMeta`` as JSON in the ``metadata_props`` key ``dice_seg_ros``, then runs
the file in ONNX Runtime on generated terrain scenes and compares it with
PyTorch. A file that disagrees is not left behind looking valid: the export
fails with ModelError.

Two graph I/O kinds (``--io``):
- ``pixels-ids`` (default): uint8 ``(N, H, W, 3)`` RGB pixels at the network
  size in; normalisation, argmax and the max softmax probability inside the
  graph; uint8 ``class_ids (N, H, W)`` and float32 ``confidence (N, H, W)`` out.
  The host only resizes in and out, and on a GPU only bytes cross the bus.
- ``float-logits``: normalised float32 ``(N, 3, H, W)`` in, float32 logits
  ``(N, C, H, W)`` out (what older releases wrote; still runs in Segmenter).
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from dice_seg_ros.errors import ModelError
from dice_seg_ros.runtime.inference import graph_io, pixel_batch, preprocess, softmax_max
from dice_seg_ros.runtime.model import load_checkpoint, save_checkpoint
from dice_seg_ros.runtime.model_meta import ONNX_META_KEY, ModelMeta

OPSET = 17
IO_PIXELS_IDS = "pixels-ids"
IO_FLOAT_LOGITS = "float-logits"
IO_KINDS = (IO_PIXELS_IDS, IO_FLOAT_LOGITS)
# Graph input/output names per I/O kind; the confidence name is the one
# inference.CONFIDENCE_OUTPUT looks for.
NAMES = {IO_PIXELS_IDS: (["pixels"], ["class_ids", "confidence"]),
         IO_FLOAT_LOGITS: (["image"], ["logits"])}
# Parity thresholds: float32 graph rewrites in ORT move logits by ~1e-5; argmax
# may flip only where two logits tie to that precision.
MAX_ABS_LOGIT_DIFF = 1e-3
MIN_ARGMAX_AGREEMENT = 0.999


@dataclass(frozen=True)
class Parity:
    """Agreement between ONNX Runtime and PyTorch on the same inputs.

    Attributes:
        max_abs_diff: largest absolute logit difference (float-logits graphs) or
            max softmax probability difference (pixels-ids graphs).
        argmax_agreement: fraction of pixels (0..1) with the same arg-max class.

    """

    max_abs_diff: float
    argmax_agreement: float

    @property
    def ok(self) -> bool:
        """Whether both figures are within the thresholds of this module."""
        return (self.max_abs_diff <= MAX_ABS_LOGIT_DIFF
                and self.argmax_agreement >= MIN_ARGMAX_AGREEMENT)


def sample_scenes(meta: ModelMeta, count: int = 2, seed: int = 10_000_000) -> list[np.ndarray]:
    """Return ``count`` generated RGB uint8 scenes at the model size.

    Real scenes rather than random noise exercise the value ranges the model
    sees in use, so the argmax comparison is meaningful.
    """
    from dice_seg_ros.data.synthetic import generate_scene
    return [generate_scene(seed + i, meta.input_width, meta.input_height)[0]
            for i in range(count)]


class PixelsToIds(nn.Module):
    """Wrap a network: uint8 NHWC pixels in, (uint8 class ids, float32 confidence) out.

    Normalisation uses ``meta``'s mean/std; ties in the argmax go to the lower
    class id, as on the host.
    """

    def __init__(self, net: nn.Module, meta: ModelMeta) -> None:
        super().__init__()
        self.net = net
        mean = torch.tensor(meta.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(meta.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("offset", mean / std)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``(N, H, W, 3)`` uint8 to ``(N, H, W)`` uint8 ids and float32 max probability."""
        # Transpose the uint8 bytes, then cast: a quarter of the memory traffic.
        x = pixels.permute(0, 3, 1, 2).float() * self.scale - self.offset
        logits = self.net(x)
        best = logits.amax(dim=1, keepdim=True)
        confidence = torch.reciprocal(torch.exp(logits - best).sum(dim=1))
        return logits.argmax(dim=1).to(torch.uint8), confidence


def to_onnx(model: nn.Module, meta: ModelMeta, out: str | Path, opset: int = OPSET,
            io: str = IO_PIXELS_IDS) -> Path:
    """Write ``model`` to ``out`` as ONNX (dynamic N, H, W) with ``meta`` in metadata_props.

    Args:
        io: graph I/O kind, one of ``IO_KINDS`` (see the module docstring).

    """
    if io not in IO_KINDS:
        raise ValueError(f"unknown ONNX I/O kind {io!r}; choose from {IO_KINDS}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    inputs, outputs = NAMES[io]
    if io == IO_PIXELS_IDS:
        model = PixelsToIds(model, meta).eval()
        dummy = torch.zeros(1, meta.input_height, meta.input_width, 3, dtype=torch.uint8)
        axes = {inputs[0]: {0: "batch", 1: "height", 2: "width"},
                **{name: {0: "batch", 1: "height", 2: "width"} for name in outputs}}
    else:
        dummy = torch.zeros(1, 3, meta.input_height, meta.input_width)
        axes = {name: {0: "batch", 2: "height", 3: "width"} for name in inputs + outputs}
    # The TorchScript exporter (dynamo=False) exports this plain CNN in ~2 s;
    # the dynamo exporter gives the same graph (checked: 6e-8 max logit
    # difference) but takes ~40 s on a 2-core CPU. torch 2.13 marks the former
    # deprecated, hence the silenced warning; switch when it is removed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (dummy,), str(out), input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, opset_version=opset,
                          dynamo=False)
    graph = onnx.load(str(out))
    entry = graph.metadata_props.add()
    entry.key, entry.value = ONNX_META_KEY, meta.to_json()
    onnx.checker.check_model(graph)
    onnx.save(graph, str(out))
    return out


def check_parity(model: nn.Module, meta: ModelMeta, onnx_path: str | Path,
                 scenes: list[np.ndarray]) -> Parity:
    """Run RGB uint8 ``scenes`` through PyTorch and ONNX Runtime and compare.

    PyTorch gets the host's float pre-processing (``inference.preprocess``);
    the ONNX graph gets what its I/O kind takes, so a pixels-ids graph is also
    checked against the host normalisation and argmax it replaces.
    """
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    io = graph_io(session, str(onnx_path))
    size = (meta.input_width, meta.input_height)
    normalised = preprocess(scenes, meta, size)
    with torch.no_grad():
        torch_logits = model.eval().cpu()(torch.from_numpy(normalised)).numpy()
    torch_ids = torch_logits.argmax(1)
    input_name = session.get_inputs()[0].name
    if io.raw_input:
        ids, confidence = session.run(None, {input_name: pixel_batch(
            scenes, meta.color_order, size)})[:2]
        reference = softmax_max(torch_logits, torch_logits.max(axis=1))
        diff = float(np.max(np.abs(confidence - reference)))
    else:
        logits = session.run(None, {input_name: normalised})[0]
        ids = logits.argmax(1)
        diff = float(np.max(np.abs(logits - torch_logits)))
    return Parity(diff, float(np.mean(ids == torch_ids)))


def export_checkpoint(checkpoint: str | Path, out: str | Path, opset: int = OPSET,
                      verify_count: int = 2, io: str = IO_PIXELS_IDS) -> tuple[Path, Parity]:
    """Export ``checkpoint`` to ``out`` with graph I/O ``io`` and verify it.

    Returns the path and the parity figures.

    Raises:
        ModelError: if the checkpoint is bad or ONNX Runtime disagrees with
            PyTorch beyond the thresholds (the bad file is removed).

    """
    model, meta = load_checkpoint(checkpoint)
    out = to_onnx(model, meta, out, opset, io)
    parity = check_parity(model, meta, out, sample_scenes(meta, verify_count))
    if not parity.ok:
        out.unlink()
        raise ModelError(
            f"{out}: ONNX Runtime disagrees with PyTorch (max |diff| "
            f"{parity.max_abs_diff:.2e} > {MAX_ABS_LOGIT_DIFF:g} or argmax agreement "
            f"{parity.argmax_agreement:.5f} < {MIN_ARGMAX_AGREEMENT}); file removed")
    return out, parity


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``dice-seg export`` options."""
    parser.add_argument("--checkpoint", required=True, help="torch checkpoint (.pt)")
    parser.add_argument("--out", required=True, help="output ONNX file")
    parser.add_argument("--opset", type=int, default=OPSET, help="ONNX opset version")
    parser.add_argument("--io", choices=IO_KINDS, default=IO_PIXELS_IDS,
                        help="graph I/O: uint8 pixels in / uint8 class ids + confidence out "
                             "(default), or float normalised input / float logits out "
                             "(older releases)")
    parser.add_argument("--torch-out",
                        help="also write a weights + meta only copy of the checkpoint here "
                             "(what models/terrain_seg.pt ships)")
    parser.add_argument("--verify-count", type=int, default=2,
                        help="generated scenes used for the ORT-vs-torch check")


def run(args: argparse.Namespace) -> int:
    """Export and verify; print the parity figures."""
    out, parity = export_checkpoint(args.checkpoint, args.out, args.opset, args.verify_count,
                                    args.io)
    if args.torch_out:
        model, meta = load_checkpoint(args.checkpoint)
        print(f"wrote {save_checkpoint(args.torch_out, model, meta)} (weights + meta)")
    print(f"wrote {out} ({args.io}): max |diff| {parity.max_abs_diff:.2e}, "
          f"argmax agreement {100 * parity.argmax_agreement:.3f} %")
    return 0
