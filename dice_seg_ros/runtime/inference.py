"""Run a terrain segmentation network on RGB images: ONNX Runtime or PyTorch.

``Segmenter`` wraps one back end behind a single interface. Pre-processing
(colour order, resize to the network size, normalisation, batching) and
post-processing (argmax, optional confidence, resize back to the camera's
resolution) are shared, so both back ends produce the same masks. The model's
``ModelMeta`` (input size, mean/std, class list) travels inside the model file
(or, for a network exported elsewhere, in a sidecar YAML next to it); its class
list is the one source of truth for what each class id means
(``classes.classes_for_model`` adds colours).

Two kinds of ONNX graph run, told apart by the graph's own input and output
types (``GraphIO``): float NCHW normalised input with float logits out (older
exports, most networks from elsewhere), or what ``dice-seg export`` writes by
default, uint8 NHWC pixels at the network size in and uint8 class ids out, with
normalisation and argmax inside the graph (and the max softmax probability as
an optional second output). The host then does only one resize in and one
nearest-neighbour resize out.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from dice_seg_ros.classes import load_classes
from dice_seg_ros.errors import ModelError
from dice_seg_ros.resources import DEFAULT_MODEL, DEFAULT_TORCH_MODEL, resource_path
from dice_seg_ros.runtime.estimated_dice import Calibration, calibration_for_model
from dice_seg_ros.runtime.model_meta import (ONNX_META_KEY, ModelMeta, Sidecar, read_sidecar,
                                             sidecar_path)

LOG = logging.getLogger(__name__)

BACKENDS = ("ort", "torch")
DEVICES = ("auto", "cuda", "cpu")
DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider",
                     "CPUExecutionProvider")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CONFIDENCE_OUTPUT = "confidence"


@dataclass(frozen=True)
class GraphIO:
    """How a network takes pixels and gives classes.

    Attributes:
        raw_input: the network takes uint8 ``(N, H, W, 3)`` pixels in its colour
            order and normalises them itself; else float32 ``(N, 3, H, W)``
            normalised by the host.
        ids_output: the network returns class ids ``(N, H, W)`` (argmax inside);
            else float logits ``(N, C, H, W)``.
        confidence_output: name of the network's ``(N, H, W)`` float32 max
            softmax probability output, or None.

    """

    raw_input: bool = False
    ids_output: bool = False
    confidence_output: str | None = None


@dataclass
class Segmentation:
    """Result for one image.

    Attributes:
        class_ids: ``(H, W)`` uint8 class id per pixel, at the input's resolution.
        confidence: ``(H, W)`` float32 max softmax probability, or None.
        timings_ms: milliseconds per stage: "pre", "infer", "post" (for a batch,
            the batch's time divided by its size).
        estimated_dice: the frame's mean Dice estimated without labels
            (:mod:`dice_seg_ros.runtime.estimated_dice`), or None when the model has no
            calibration or gives no confidence.
        network_planes: ``(class ids, confidence or None)`` at the network's resolution, what
            the estimate is computed from (and what ``dice-seg calibrate`` fits it on).

    """

    class_ids: np.ndarray
    confidence: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    estimated_dice: float | None = None
    network_planes: tuple[np.ndarray, np.ndarray | None] | None = None


def check_rgb(image: Any) -> np.ndarray:
    """Return ``image`` if it is an ``(H, W, 3)`` uint8 array, else raise ValueError."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} "
                         f"dtype {image.dtype}")
    return image


def resize_image(image: np.ndarray, width: int, height: int,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Resize an ``(h, w, 3)`` image to ``width`` x ``height`` pixels without aliasing.

    ``out``, an ``(height, width, 3)`` uint8 array, receives the result when
    given (so a per-frame buffer can be reused); otherwise a new array (or
    ``image`` itself, already at the size) is returned.

    Shrinking halves the image with INTER_AREA while it is at least twice the
    target in both axes, then finishes with INTER_LINEAR (a factor below 2).
    OpenCV's INTER_AREA is fast only for an exact factor of 2: one INTER_AREA
    step from 1280x720 to 320x240 takes ~2 ms, halving plus LINEAR ~0.5 ms,
    with the same held-out Dice.
    """
    h, w = image.shape[:2]
    while w >= 2 * width and h >= 2 * height:
        w, h = w // 2, h // 2
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    if (w, h) != (width, height):
        return cv2.resize(image, (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
    if out is not None:
        out[...] = image
        return out
    return image


def pixel_batch(images: Sequence[np.ndarray], color_order: str, size: tuple[int, int],
                out: np.ndarray | None = None) -> np.ndarray:
    """Resize RGB uint8 images into one ``(N, H, W, 3)`` uint8 batch in ``color_order``.

    Args:
        images: ``(h, w, 3)`` uint8 RGB images of any sizes.
        color_order: "rgb" or "bgr", the order the network expects.
        size: network input ``(width, height)`` in pixels.
        out: a batch buffer to fill when its shape fits (reused across frames).

    """
    width, height = size
    shape = (len(images), height, width, 3)
    if out is None or out.shape != shape:
        out = np.empty(shape, np.uint8)
    for k, image in enumerate(images):
        resize_image(image, width, height, out=out[k])
    if color_order == "bgr":
        np.copyto(out, out[..., ::-1])
    return out


def normalise(pixels: np.ndarray, meta: ModelMeta, out: np.ndarray | None = None) -> np.ndarray:
    """Turn a ``(N, H, W, 3)`` uint8 batch into normalised ``(N, 3, H, W)`` float32.

    ``out`` is filled when its shape fits (a buffer reused across frames).
    """
    # (x / 255 - mean) / std == x * scale - offset: one multiply writing straight
    # into the NCHW float32 buffer, one subtract, no intermediate copies. The
    # mean/std are the model's, in its colour order (as the pixels already are).
    count, height, width = pixels.shape[:3]
    scale = (1.0 / (255.0 * np.asarray(meta.std, np.float32)))[:, None, None]
    offset = (np.asarray(meta.mean, np.float32) / np.asarray(meta.std, np.float32))[:, None, None]
    if out is None or out.shape != (count, 3, height, width):
        out = np.empty((count, 3, height, width), np.float32)
    np.multiply(pixels.transpose(0, 3, 1, 2), scale, out=out, casting="unsafe")
    out -= offset
    return out


def preprocess(images: Sequence[np.ndarray], meta: ModelMeta,
               size: tuple[int, int]) -> np.ndarray:
    """Turn RGB uint8 images into the network's ``(N, 3, H, W)`` float32 input.

    Args:
        images: ``(h, w, 3)`` uint8 RGB images of any sizes.
        meta: the model's normalisation and colour order.
        size: network input ``(width, height)`` in pixels.

    """
    return normalise(pixel_batch(images, meta.color_order, size), meta)


def argmax_channels(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(class ids uint8 (N, H, W), max logit float32 (N, H, W))`` of ``(N, C, H, W)``.

    A loop over the few classes with contiguous ``(N, H, W)`` slices is several
    times faster than ``np.argmax(axis=1)``, which strides across channels.
    Ties go to the lower class id, as with ``np.argmax``. NaN logits propagate
    into the max (``np.maximum``), which is how callers detect them.
    """
    best = logits[:, 0].copy()
    ids = np.zeros(best.shape, np.uint8)
    wins = np.empty(best.shape, np.bool_)
    candidate = np.empty(best.shape, np.uint8)
    for channel in range(1, logits.shape[1]):
        plane = logits[:, channel]
        np.greater(plane, best, out=wins)
        # Channels come in increasing order, so ``channel`` exceeds every id
        # written so far: max(ids, wins * channel) is the masked write without
        # the branchy boolean-index store (about 20x slower on noisy masks).
        np.multiply(wins, np.uint8(channel), out=candidate)
        np.maximum(ids, candidate, out=ids)
        np.maximum(best, plane, out=best)
    return ids, best


def softmax_max(logits: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Return the max softmax probability ``(N, H, W)`` float32 given the max logit."""
    total = np.zeros(best.shape, np.float32)
    for channel in range(logits.shape[1]):
        total += np.exp(logits[:, channel] - best)
    return np.reciprocal(total, out=total)


def ids_to_camera_size(ids: np.ndarray, height: int, width: int) -> np.ndarray:
    """Return ``(h, w)`` uint8 class ids resized nearest-neighbour to ``height`` x ``width`` px.

    The same pixels as OpenCV's INTER_NEAREST_EXACT. When ``height`` is a whole
    multiple of ``h`` (480 or 720 rows from 240), only the width is resized and
    each row is then copied ``height / h`` times: 2-3x faster at 1280x720.
    """
    rows = ids.shape[0]
    if ids.shape == (height, width):
        return ids
    if height % rows:
        return cv2.resize(ids, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    wide = ids if ids.shape[1] == width else cv2.resize(
        ids, (width, rows), interpolation=cv2.INTER_NEAREST_EXACT)
    return np.repeat(wide, height // rows, axis=0)


def to_camera_sizes(ids: np.ndarray, confidence: np.ndarray | None,
                    sizes: Sequence[tuple[int, int]]
                    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Resize ``(N, h, w)`` class ids (and confidence) back to each image's size.

    Args:
        ids: uint8 class ids at network resolution.
        confidence: float32 max probability at network resolution, or None.
        sizes: ``(height, width)`` in pixels of each original image.

    """
    out = []
    for k, (height, width) in enumerate(sizes):
        # Argmax at network resolution, then nearest-neighbour upsampling of uint8
        # ids: far cheaper than resizing C float logit planes, and ids never blend.
        frame_ids = ids_to_camera_size(ids[k], height, width)
        frame_conf = None
        if confidence is not None:
            frame_conf = confidence[k]
            if frame_conf.shape != (height, width):
                frame_conf = cv2.resize(frame_conf, (width, height),
                                        interpolation=cv2.INTER_LINEAR)
        out.append((frame_ids, frame_conf))
    return out


def check_finite_confidence(confidence: np.ndarray, source: str) -> None:
    """Raise ModelError naming ``source`` and the batch items whose confidence has NaN."""
    bad = np.flatnonzero(np.isnan(confidence.reshape(len(confidence), -1).sum(axis=1)))
    if bad.size:
        raise ModelError(f"{source}: model produced NaN logits for batch item(s) "
                         f"{bad.tolist()}")


def logits_to_ids(logits: np.ndarray, with_confidence: bool, source: str
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Return ``(class ids (N, H, W) uint8, confidence or None)`` of ``(N, C, H, W)`` logits.

    Raises:
        ModelError: naming ``source`` if the network produced NaN logits.

    """
    logits = np.asarray(logits, dtype=np.float32)
    ids, best = argmax_channels(logits)
    check_finite_confidence(best, source)
    return ids, softmax_max(logits, best) if with_confidence else None


def ids_from_graph(ids: np.ndarray, num_classes: int, source: str) -> np.ndarray:
    """Return a graph's class-id output as ``(N, H, W)`` uint8, checking the id range.

    Graphs from elsewhere may give int64 ids or keep a channel axis ``(N, 1, H, W)``.

    Raises:
        ModelError: naming ``source`` if an id is not a class of the model.

    """
    if ids.ndim == 4 and ids.shape[1] == 1:
        ids = ids[:, 0]
    if ids.ndim != 3:
        raise ModelError(f"{source}: class-id output must be (N, H, W) or (N, 1, H, W), "
                         f"got shape {ids.shape}")
    top = int(ids.max(initial=0))
    if top >= num_classes or int(ids.min(initial=0)) < 0:
        raise ModelError(f"{source}: model output class id {top} but lists only "
                         f"{num_classes} classes")
    return ids.astype(np.uint8, copy=False)


# Said where a GPU was asked for and none is there: by a command or by a node's parameter.
CPU_HINT = "ask for the CPU (--device cpu on the command line, device:=cpu for a node)"


def _select_providers(device: str, providers: Sequence[str] | None) -> list[str]:
    """Return the ONNX Runtime providers to use, in order, for ``device``."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        wanted = ["CPUExecutionProvider"]
    else:
        wanted = list(providers or DEFAULT_PROVIDERS)
    chosen = [p for p in wanted if p in available]
    skipped = [p for p in wanted if p not in available]
    if skipped:
        LOG.info("ONNX Runtime providers not available here, skipped: %s (available: %s)",
                 ", ".join(skipped), ", ".join(available))
    has_gpu = any(p in GPU_PROVIDERS for p in chosen)
    if device == "cuda" and not has_gpu:
        raise ValueError(f"device 'cuda' requested but ONNX Runtime has no GPU provider "
                         f"(available: {', '.join(available)}); install onnxruntime-gpu, "
                         f"or {CPU_HINT}")
    if device == "auto" and not has_gpu:
        # 'auto' asked for nothing in particular: the CPU is an answer, not a problem.
        LOG.info("no GPU provider in ONNX Runtime; running on CPU")
    if not chosen:
        raise ValueError(f"none of the requested ONNX Runtime providers {wanted} is "
                         f"available (available: {', '.join(available)})")
    return chosen


def _provider_options(name: str,
                      engine_cache_dir: Path | None = None) -> tuple[str, dict[str, Any]] | str:
    """Return ``name`` with options: TensorRT in fp16 with an engine cache, others as is."""
    if name != "TensorrtExecutionProvider":
        return name
    # Building a TensorRT engine takes minutes; cache it across runs.
    cache = engine_cache_dir or Path.home() / ".cache" / "dice_seg_ros" / "tensorrt"
    cache.mkdir(parents=True, exist_ok=True)
    return name, {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                  "trt_engine_cache_path": str(cache)}


def _session_options(threads: int | None) -> Any:
    """Return ONNX Runtime session options: full graph optimisation, no spin-waiting.

    By default ORT's worker threads spin for a while after each run, waiting for
    the next: at 30 Hz a paced ``Segmenter`` then burns ~5x the CPU of its
    inference (38 against 8 ms of CPU per frame, issue 10) for no gain in latency.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def graph_io(session: Any, source: str) -> GraphIO:
    """Tell the I/O kind of an ONNX Runtime session from its input and output types.

    Raises:
        ModelError: naming ``source`` for an input that is neither float NCHW nor
            uint8 NHWC with 3 channels.

    """
    model_input = session.get_inputs()[0]
    outputs = session.get_outputs()
    if model_input.type == "tensor(uint8)":
        if len(model_input.shape) != 4 or model_input.shape[3] not in (3, "3"):
            raise ModelError(f"{source}: uint8 input must be (N, H, W, 3) pixels, got shape "
                             f"{model_input.shape}")
        raw = True
    elif model_input.type == "tensor(float)" and len(model_input.shape) == 4:
        raw = False
    else:
        raise ModelError(f"{source}: input {model_input.name!r} is {model_input.type} of "
                         f"shape {model_input.shape}; expected float (N, 3, H, W) or uint8 "
                         f"(N, H, W, 3)")
    names = [output.name for output in outputs]
    return GraphIO(raw_input=raw, ids_output=outputs[0].type != "tensor(float)",
                   confidence_output=CONFIDENCE_OUTPUT if CONFIDENCE_OUTPUT in names[1:]
                   else None)


def _graph_size(session: Any, raw_input: bool) -> tuple[Any, Any]:
    """Return the ONNX input's (height, width): ints where fixed, names where dynamic."""
    shape = session.get_inputs()[0].shape
    return (shape[1], shape[2]) if raw_input else (shape[2], shape[3])


class _OrtBackend:
    """ONNX Runtime session; ModelMeta from the ONNX metadata or the sidecar YAML.

    Runs through ``session.run`` on CPU, where the outputs are numpy arrays
    already; on a GPU provider through I/O binding, so intermediate tensors stay
    on the device and only the network's (uint8) input and output cross the bus.
    """

    def __init__(self, path: Path, device: str, providers: Sequence[str] | None,
                 threads: int | None, engine_cache_dir: Path | None = None) -> None:
        import onnxruntime as ort

        chosen = _select_providers(device, providers)
        try:
            self.session = ort.InferenceSession(
                str(path), _session_options(threads),
                providers=[_provider_options(p, engine_cache_dir) for p in chosen])
        except Exception as exc:  # ORT raises several private pybind types for bad files
            raise ModelError(f"{path}: cannot load ONNX model ({type(exc).__name__}: "
                             f"{str(exc).strip()[:300]})") from exc
        self.io = graph_io(self.session, str(path))
        self.sidecar = self._sidecar(path)
        if self.sidecar is not None:
            self.meta = self.sidecar.meta
        else:
            properties = self.session.get_modelmeta().custom_metadata_map
            self.meta = ModelMeta.from_json(properties[ONNX_META_KEY], source=str(path))
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.output_name = self.session.get_outputs()[0].name
        self.fixed_batch = model_input.shape[0] if isinstance(model_input.shape[0], int) else None
        self._check_output(path)
        self.device = self.session.get_providers()[0]
        self.io_binding = self.device in GPU_PROVIDERS

    def _sidecar(self, path: Path) -> Sidecar | None:
        """Return the sidecar of a model without ``dice_seg_ros`` metadata (None if it has it).

        Raises:
            ModelError: if the model has neither metadata nor a sidecar, or the
                sidecar's output kind contradicts the graph.

        """
        if ONNX_META_KEY in self.session.get_modelmeta().custom_metadata_map:
            return None
        side = sidecar_path(path)
        if not side.is_file():
            raise ModelError(f"{path}: ONNX model has no {ONNX_META_KEY!r} metadata "
                             f"(input size, normalisation, classes) and no sidecar {side}; "
                             f"export it with 'dice-seg export' or write the sidecar "
                             f"(docs/MODELS.md: 'A model from elsewhere')")
        sidecar = read_sidecar(side, _graph_size(self.session, self.io.raw_input))
        graph_output = "class_ids" if self.io.ids_output else "logits"
        if sidecar.output != graph_output:
            output = self.session.get_outputs()[0]
            raise ModelError(f"{side}: sidecar says output {sidecar.output!r} but the graph's "
                             f"output {output.name!r} is {output.type} ({graph_output})")
        return sidecar

    def _check_output(self, path: Path) -> None:
        """Raise ModelError if a logits output's channel count differs from the class list."""
        if self.io.ids_output:
            return
        channels = self.session.get_outputs()[0].shape[1]
        if isinstance(channels, int) and channels != self.meta.num_classes:
            raise ModelError(f"{path}: ONNX output has {channels} channels but its metadata "
                             f"lists {self.meta.num_classes} classes")

    def check_size(self, size: tuple[int, int], source: str) -> None:
        """Raise ModelError if the graph has a fixed input size other than ``size``."""
        height, width = _graph_size(self.session, self.io.raw_input)
        for fixed, wanted, axis in ((width, size[0], "width"), (height, size[1], "height")):
            if isinstance(fixed, int) and fixed != wanted:
                raise ModelError(f"{source}: ONNX input {axis} is fixed at {fixed} px; "
                                 f"cannot run at {wanted} px")

    def run(self, batch: np.ndarray, with_confidence: bool
            ) -> tuple[np.ndarray, np.ndarray | None]:
        """Return the network's first output and, if asked and present, its confidence.

        ``batch`` is what ``io.raw_input`` says: uint8 NHWC pixels or float NCHW.
        """
        names = [self.output_name]
        if with_confidence and self.io.confidence_output:
            names.append(self.io.confidence_output)
        if self.fixed_batch is None or self.fixed_batch == len(batch):
            outputs = self._run(names, batch)
        else:
            parts = [self._run(names, batch[k:k + 1]) for k in range(len(batch))]
            outputs = [np.concatenate(column) for column in zip(*parts)]
        return outputs[0], outputs[1] if len(outputs) > 1 else None

    def _run(self, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
        """Run the session once for output ``names``; I/O binding on a GPU provider."""
        if not self.io_binding:
            return self.session.run(names, {self.input_name: batch})
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, np.ascontiguousarray(batch))
        for name in names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


class _TorchBackend:
    """PyTorch checkpoint; fp16 autocast on CUDA, channels_last, optional torch.compile."""

    def __init__(self, path: Path, device: str, threads: int | None, compile_model: bool) -> None:
        import torch

        from dice_seg_ros.runtime.model import load_checkpoint

        self.torch = torch
        if device in ("auto", "cuda") and torch.cuda.is_available():
            self.device = "cuda:0"
        elif device == "cuda":
            raise ValueError("device 'cuda' requested but PyTorch sees no CUDA GPU "
                             f"(torch.cuda.is_available() is False); {CPU_HINT}")
        else:
            if device == "auto":
                # 'auto' asked for nothing in particular: the CPU is an answer, not a problem.
                LOG.info("no CUDA GPU visible to PyTorch; running on CPU")
            self.device = "cpu"
        if threads:
            torch.set_num_threads(threads)
        self.io = GraphIO()
        self.sidecar = None
        model, self.meta = load_checkpoint(path, map_location="cpu")
        model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        self.model = torch.compile(model) if compile_model else model

    def check_size(self, size: tuple[int, int], source: str) -> None:
        """Accept any input size: the network is fully convolutional."""

    def run(self, batch: np.ndarray, with_confidence: bool) -> tuple[np.ndarray, None]:
        """Return logits ``(N, C, H, W)`` float32 for a normalised NCHW batch (and None)."""
        torch = self.torch
        on_gpu = self.device.startswith("cuda")
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16,
                                                    enabled=on_gpu):
            tensor = torch.from_numpy(batch).to(self.device, non_blocking=True)
            logits = self.model(tensor.contiguous(memory_format=torch.channels_last))
        return logits.float().cpu().numpy(), None


def add_model_arguments(parser: argparse.ArgumentParser, threads: int | None = None) -> None:
    """Add ``--model``, ``--backend``, ``--device`` and ``--threads``: the same for every command.

    The node's ``model_path``, ``backend`` and ``device`` parameters take the same values.
    """
    parser.add_argument("--model", default=None,
                        help=".onnx or .pt model, or an ONNX model from elsewhere with a "
                             "sidecar YAML (default: the shipped model)")
    parser.add_argument("--backend", choices=BACKENDS, default="ort",
                        help="ort (ONNX Runtime) or torch")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="auto (a GPU when there is one), cuda, or cpu")
    parser.add_argument("--threads", type=int, default=threads,
                        help="CPU threads for inference" + (f" (default {threads})"
                                                            if threads else ""))


def resolve_model_path(model_path: str | Path | None, backend: str) -> Path:
    """Return the model file for ``backend``: the shipped one by default.

    With the torch back end, a ``.onnx`` path means its sibling ``.pt`` checkpoint.
    """
    if model_path is None:
        try:
            return resource_path(DEFAULT_TORCH_MODEL if backend == "torch" else DEFAULT_MODEL)
        except FileNotFoundError as exc:
            raise ModelError(str(exc)) from exc
    path = Path(model_path)
    if backend == "torch" and path.suffix == ".onnx":
        sibling = path.with_suffix(".pt")
        if not sibling.is_file():
            raise ModelError(f"{path}: the torch back end needs a PyTorch checkpoint, and "
                             f"{sibling} does not exist; pass a .pt file or use --backend ort")
        path = sibling
    if not path.is_file():
        raise ModelError(f"model file not found: {path} (the shipped models are "
                         f"{', '.join(shipped_models())})")
    return path


def shipped_models() -> list[str]:
    """Return the paths of the models shipped with the package (.onnx and .pt)."""
    try:
        folder = resource_path(DEFAULT_MODEL).parent
    except FileNotFoundError:
        return ["none installed"]
    return [str(p) for p in sorted(folder.glob("*.onnx")) + sorted(folder.glob("*.pt"))]


def _remap_lut(sidecar: Sidecar | None, node_names: tuple[str, ...], source: str
               ) -> np.ndarray | None:
    """Return the uint8 LUT network class id -> node class id of a sidecar's remap, or None.

    Raises:
        ModelError: naming ``source`` if the remap targets a class the node lacks.

    """
    if sidecar is None or not sidecar.remap:
        return None
    lut = np.zeros(256, np.uint8)
    for network_id, name in enumerate(sidecar.meta.class_names):
        target = sidecar.remap[name]
        if target not in node_names:
            raise ModelError(f"{source}: remap sends {name!r} to {target!r}, which is not "
                             f"one of the node's classes {list(node_names)}")
        lut[network_id] = node_names.index(target)
    return lut


class Segmenter:
    """Segment RGB images into class ids with ONNX Runtime or PyTorch.

    One Segmenter serves one thread: it reuses its per-frame input buffers.

    Args:
        model_path: ``.onnx`` (ort) or ``.pt`` (torch) file; default: the shipped
            model. An ONNX file without this project's metadata needs a sidecar
            ``<file>.yaml`` next to it (``model_meta.read_sidecar``).
        backend: "ort" or "torch" (torch is imported only for "torch").
        device: "auto" (GPU if available, else CPU with a warning), "cuda" (error
            if absent) or "cpu".
        providers: ONNX Runtime providers in order of preference; those not
            available are skipped with a log note. Default TensorRT, CUDA, CPU.
        input_size: network input ``(width, height)`` in pixels; default from the
            model's metadata.
        threads: CPU threads for the back end (None: library default).
        compile_model: wrap the torch model in ``torch.compile``.
        engine_cache_dir: TensorRT engine cache folder (default
            ``~/.cache/dice_seg_ros/tensorrt``); one per instance when several run.
        estimate_dice: fill ``Segmentation.estimated_dice`` when the model has a
            calibration (``NAME.quality.json``; one fitted for another model is
            ignored with a warning).

    Attributes:
        meta: the model's ModelMeta (with the node's class names when a sidecar
        remaps the network's classes). backend: "ort" or "torch". device: what
        actually runs it ("CPUExecutionProvider", "cuda:0", "cpu", ...). io: the
        network's GraphIO. input_size: ``(width, height)``, or None for a
        sidecar's "dynamic" size (each image runs at its own size).

    Raises:
        ModelError: missing/corrupt model, missing metadata and sidecar, or a
            sidecar remap onto classes the classes file lacks (naming the file).
        ValueError: unknown backend/device, or "cuda" requested without a GPU.

    """

    def __init__(self, model_path: str | Path | None = None, backend: str = "ort",
                 device: str = "auto", providers: Sequence[str] | None = None,
                 input_size: tuple[int, int] | None = None, threads: int | None = None,
                 compile_model: bool = False,
                 engine_cache_dir: str | Path | None = None,
                 estimate_dice: bool = True) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
        if device not in DEVICES:
            raise ValueError(f"unknown device {device!r}; choose from {DEVICES}")
        self.model_path = resolve_model_path(model_path, backend)
        self.source = str(self.model_path)
        if backend == "ort":
            self._backend: _OrtBackend | _TorchBackend = _OrtBackend(
                self.model_path, device, providers, threads,
                Path(engine_cache_dir) if engine_cache_dir else None)
        else:
            self._backend = _TorchBackend(self.model_path, device, threads, compile_model)
        self.backend = backend
        self.device = self._backend.device
        self.io = self._backend.io
        self.sidecar = self._backend.sidecar
        node_names = load_classes().names
        self._lut = _remap_lut(self.sidecar, node_names, self.source)
        self.meta = self._backend.meta
        if self._lut is not None:
            self.meta = replace(self.meta, class_names=tuple(node_names))
        self.input_size = self._input_size(input_size)
        if self.input_size is not None:
            self._backend.check_size(self.input_size, self.source)
        self._pixels: np.ndarray | None = None
        self._normalised: np.ndarray | None = None
        self.calibration = self._calibration() if estimate_dice else None

    @property
    def class_costs(self) -> tuple[int | None, ...]:
        """Traversability cost per class id from the sidecar (None where it gives none).

        Empty for a model with metadata, and for a sidecar that remaps onto the node's classes
        (whose classes file gives the costs).
        """
        if self.sidecar is None or self._lut is not None:
            return ()
        return self.sidecar.class_costs

    def _calibration(self) -> Calibration | None:
        """Return the model's estimated-Dice calibration; None (warned) if it is not usable."""
        try:
            return calibration_for_model(self.model_path)
        except ModelError as exc:
            LOG.warning("%s; estimated Dice disabled", exc)
            return None

    def _input_size(self, input_size: tuple[int, int] | None) -> tuple[int, int] | None:
        """Return the network size to run at: the override, the metadata's, or None (dynamic)."""
        if input_size is None:
            if self.meta.dynamic_size:
                return None
            return self.meta.input_width, self.meta.input_height
        if len(input_size) != 2 or min(input_size) < 1:
            raise ValueError(f"input_size must be (width, height) >= 1 px, got {input_size}")
        return int(input_size[0]), int(input_size[1])

    def segment(self, rgb: np.ndarray, with_confidence: bool = False) -> Segmentation:
        """Segment one ``(H, W, 3)`` uint8 RGB image."""
        return self.segment_batch([rgb], with_confidence)[0]

    def segment_batch(self, images: Sequence[np.ndarray],
                      with_confidence: bool = False) -> list[Segmentation]:
        """Segment several RGB images (any sizes) in one network call.

        With a dynamic input size, images of different sizes run one call each.
        """
        if not len(images):
            return []
        images = [check_rgb(image) for image in images]
        size = self.input_size or (images[0].shape[1], images[0].shape[0])
        if self.input_size is None and any(i.shape != images[0].shape for i in images):
            return [self.segment_batch([image], with_confidence)[0] for image in images]
        start = time.perf_counter()
        batch = self._network_input(images, size)
        pre_done = time.perf_counter()
        # The estimated Dice needs the confidence even when the caller does not.
        need_confidence = with_confidence or self.calibration is not None
        output, confidence = self._backend.run(batch, need_confidence)
        infer_done = time.perf_counter()
        ids, confidence = self._network_ids(output, confidence, need_confidence)
        # The estimate reads the network-size planes: resizing the confidence plane to the
        # camera costs more than the features themselves, and only a caller that asked for
        # the confidence needs it at camera size.
        estimates = [self._estimate(ids[k], None if confidence is None else confidence[k])
                     for k in range(len(images))]
        results = to_camera_sizes(ids, confidence if with_confidence else None,
                                  [i.shape[:2] for i in images])
        end = time.perf_counter()
        per_image = 1000.0 / len(images)
        timings = {"pre": (pre_done - start) * per_image,
                   "infer": (infer_done - pre_done) * per_image,
                   "post": (end - infer_done) * per_image}
        return [Segmentation(frame_ids, frame_conf, dict(timings), estimate,
                             (ids[k], None if confidence is None else confidence[k]))
                for k, ((frame_ids, frame_conf), estimate) in enumerate(zip(results, estimates))]

    def _estimate(self, class_ids: np.ndarray, confidence: np.ndarray | None) -> float | None:
        """Return the frame's estimated mean Dice, or None without calibration or confidence."""
        if self.calibration is None or confidence is None:
            return None
        return self.calibration.estimate(class_ids, confidence)

    def _network_input(self, images: Sequence[np.ndarray], size: tuple[int, int]
                       ) -> np.ndarray:
        """Return the batch the network takes, in buffers reused across frames."""
        self._pixels = pixel_batch(images, self.meta.color_order, size, out=self._pixels)
        if self.io.raw_input:
            return self._pixels
        self._normalised = normalise(self._pixels, self.meta, out=self._normalised)
        return self._normalised

    def _network_ids(self, output: np.ndarray, confidence: np.ndarray | None,
                     with_confidence: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Turn the network output into ``(N, h, w)`` class ids (and confidence), network size."""
        if self.io.ids_output:
            ids = ids_from_graph(output, self._backend.meta.num_classes, self.source)
            if confidence is not None:
                check_finite_confidence(confidence, self.source)
        else:
            ids, confidence = logits_to_ids(output, with_confidence, self.source)
        if self._lut is not None:
            ids = self._lut[ids]
        return ids, confidence
