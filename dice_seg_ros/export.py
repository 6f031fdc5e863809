"""Export a checkpoint to ONNX with its metadata and verify it against PyTorch.

``dice-seg export --checkpoint C --out model.onnx`` writes an ONNX graph with
dynamic batch, height and width axes (the network is fully convolutional, so
``input_width``/``input_height`` overrides work in ONNX Runtime too), stores
``ModelMeta`` as JSON in the ``metadata_props`` key ``dice_seg_ros``, then runs
the file in ONNX Runtime on generated terrain scenes and compares logits and
argmax with PyTorch. A file that disagrees is not left behind looking valid:
the export fails with ModelError.
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
from dice_seg_ros.inference import preprocess
from dice_seg_ros.model import load_checkpoint, save_checkpoint
from dice_seg_ros.model_meta import ONNX_META_KEY, ModelMeta

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
# Parity thresholds: float32 graph rewrites in ORT move logits by ~1e-5; argmax
# may flip only where two logits tie to that precision.
MAX_ABS_LOGIT_DIFF = 1e-3
MIN_ARGMAX_AGREEMENT = 0.999


@dataclass(frozen=True)
class Parity:
    """Agreement between ONNX Runtime and PyTorch on the same inputs.

    Attributes:
        max_abs_diff: largest absolute logit difference.
        argmax_agreement: fraction of pixels (0..1) with the same arg-max class.

    """

    max_abs_diff: float
    argmax_agreement: float

    @property
    def ok(self) -> bool:
        """Whether both figures are within the thresholds of this module."""
        return (self.max_abs_diff <= MAX_ABS_LOGIT_DIFF
                and self.argmax_agreement >= MIN_ARGMAX_AGREEMENT)


def sample_inputs(meta: ModelMeta, count: int = 2, seed: int = 10_000_000) -> np.ndarray:
    """Return generated scenes at the model size, normalised: (count, 3, H, W) float32.

    Real scenes rather than random noise exercise the value ranges the model
    sees in use, so the argmax comparison is meaningful. They are normalised by
    ``inference.preprocess``, the code that feeds the exported model in use.
    """
    from dice_seg_ros.data.synthetic import generate_scene
    scenes = [generate_scene(seed + i, meta.input_width, meta.input_height)[0]
              for i in range(count)]
    return preprocess(scenes, meta, (meta.input_width, meta.input_height))


def to_onnx(model: nn.Module, meta: ModelMeta, out: str | Path, opset: int = OPSET) -> Path:
    """Write ``model`` to ``out`` as ONNX (dynamic N, H, W) with ``meta`` in metadata_props."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    dummy = torch.zeros(1, 3, meta.input_height, meta.input_width)
    # The TorchScript exporter (dynamo=False) exports this plain CNN in ~2 s;
    # the dynamo exporter gives the same graph (checked: 6e-8 max logit
    # difference) but takes ~40 s on a 2-core CPU. torch 2.13 marks the former
    # deprecated, hence the silenced warning; switch when it is removed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (dummy,), str(out), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: "batch", 2: "height", 3: "width"}
                          for name in (INPUT_NAME, OUTPUT_NAME)},
            opset_version=opset, dynamo=False)
    graph = onnx.load(str(out))
    entry = graph.metadata_props.add()
    entry.key, entry.value = ONNX_META_KEY, meta.to_json()
    onnx.checker.check_model(graph)
    onnx.save(graph, str(out))
    return out


def check_parity(model: nn.Module, onnx_path: str | Path, inputs: np.ndarray) -> Parity:
    """Run ``inputs`` (N, 3, H, W) through PyTorch and ONNX Runtime and compare."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ort_logits = session.run([OUTPUT_NAME], {INPUT_NAME: inputs})[0]
    with torch.no_grad():
        torch_logits = model.eval().cpu()(torch.from_numpy(inputs)).numpy()
    agree = float(np.mean(ort_logits.argmax(1) == torch_logits.argmax(1)))
    return Parity(float(np.max(np.abs(ort_logits - torch_logits))), agree)


def export_checkpoint(checkpoint: str | Path, out: str | Path, opset: int = OPSET,
                      verify_count: int = 2) -> tuple[Path, Parity]:
    """Export ``checkpoint`` to ``out`` and verify it; return the path and parity figures.

    Raises:
        ModelError: if the checkpoint is bad or ONNX Runtime disagrees with
            PyTorch beyond the thresholds (the bad file is removed).

    """
    model, meta = load_checkpoint(checkpoint)
    out = to_onnx(model, meta, out, opset)
    parity = check_parity(model, out, sample_inputs(meta, verify_count))
    if not parity.ok:
        out.unlink()
        raise ModelError(
            f"{out}: ONNX Runtime disagrees with PyTorch (max |logit diff| "
            f"{parity.max_abs_diff:.2e} > {MAX_ABS_LOGIT_DIFF:g} or argmax agreement "
            f"{parity.argmax_agreement:.5f} < {MIN_ARGMAX_AGREEMENT}); file removed")
    return out, parity


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``dice-seg export`` options."""
    parser.add_argument("--checkpoint", required=True, help="torch checkpoint (.pt)")
    parser.add_argument("--out", required=True, help="output ONNX file")
    parser.add_argument("--opset", type=int, default=OPSET, help="ONNX opset version")
    parser.add_argument("--torch-out",
                        help="also write a weights + meta only copy of the checkpoint here "
                             "(what models/terrain_seg.pt ships)")
    parser.add_argument("--verify-count", type=int, default=2,
                        help="generated scenes used for the ORT-vs-torch check")


def run(args: argparse.Namespace) -> int:
    """Export and verify; print the parity figures."""
    out, parity = export_checkpoint(args.checkpoint, args.out, args.opset, args.verify_count)
    if args.torch_out:
        model, meta = load_checkpoint(args.checkpoint)
        print(f"wrote {save_checkpoint(args.torch_out, model, meta)} (weights + meta)")
    print(f"wrote {out}: max |logit diff| {parity.max_abs_diff:.2e}, "
          f"argmax agreement {100 * parity.argmax_agreement:.3f} %")
    return 0
