"""Dice-family segmentation losses (torch): Dice, generalised Dice, Tversky, Jaccard, focal, CE.

Every overlap loss (Dice, Jaccard, Tversky, focal Tversky, generalised Dice) is a function of three
per-image, per-class sums over the pixels (or voxels) that are not ignored:

- ``intersection`` = sum(p * g)
- ``prediction``   = sum(p), or sum(p ** 2) with ``squared_pred``
- ``target``       = sum(g), or sum(g ** 2) with ``squared_pred``

where ``p`` is the predicted probability of the class and ``g`` the target (0/1, or soft). One
function, :func:`overlap_sums`, computes them for every mode; the losses differ only in the formula
applied to those (B, C) sums, so the per-pixel work and memory are shared and identical.

Modes (argument ``mode``):

- ``"multiclass"``: logits (B, C, *spatial) with C >= 2, softmax over channels; target holds
  integer class ids 0..C-1, shaped (B, *spatial) or (B, 1, *spatial). The target is never
  expanded to a one-hot tensor: per-class sums are gathered/scattered from the ids directly. With
  ``from_logits=True`` (the default) a fused autograd function computes the softmax once and
  turns that buffer into the logits' gradient in place, so forward + backward hold about 1.3
  logits-sized tensors at their peak instead of MONAI's 3 for logits over 8 MiB, and at most
  one logits-sized tensor plus 8 MiB below that (see benchmarks/bench_losses.py).
- ``"binary"``: logits (B, 1, *spatial), sigmoid; target (B, *spatial) or (B, 1, *spatial) with
  values in [0, 1] (0/1 for hard labels).
- ``"multilabel"``: logits (B, C, *spatial), independent sigmoid per channel; target float in
  [0, 1] shaped like the logits.

``spatial`` is 2D (H, W) or 3D (D, H, W). Sums are accumulated in float32 (float64 for float64
inputs), and autocast is switched off inside the losses, so fp16/bf16 logits give finite losses
(their probabilities are held in float32, and the gradient comes back in the logits' dtype).

Checks: target shape, dtype and values (class ids in 0..C-1 besides ``ignore_index``) are always
checked, with a ValueError naming what is wrong. NaN/inf logits are only looked for with
``validate=True`` (one device-to-host sync per call; the training utilities switch it on).

With ``ignore_index=None`` the overlap losses equal MONAI's (``DiceLoss(to_onehot_y=True,
softmax=True)`` for multiclass, ``DiceLoss(sigmoid=True)`` for binary/multilabel, and likewise
``GeneralizedDiceLoss``, ``TverskyLoss``, ``DiceLoss(jaccard=True)``) in value and gradient; the
tests check this to 1e-6 in float64.

Arguments of the overlap losses (Dice, Jaccard, Tversky, focal Tversky, generalised Dice; Dice+CE
passes them to its Dice term):

- ``mode``: ``"multiclass"`` (softmax over C >= 2 channels, target = int class ids (B, *spatial)
  or (B, 1, *spatial)), ``"binary"`` (1 channel, sigmoid, target 0/1 of shape (B, *spatial) or
  (B, 1, *spatial)) or ``"multilabel"`` (C channels, independent sigmoids, target 0/1 float
  shaped like the logits).
- ``from_logits``: if True (default) the input holds raw scores and softmax/sigmoid is applied;
  if False it already holds probabilities.
- ``include_background``: if False, channel 0 is left out of the loss (not of the softmax). Use
  it when a large background class swamps small foreground classes. No effect in binary mode,
  whose single channel is the foreground.
- ``ignore_index``: target value (e.g. 255) whose pixels drop out of every sum, exactly as if
  they were cropped away. None: every pixel counts.
- ``smooth_nr``: small constant added to the numerator; keeps the loss of a class absent from
  both target and prediction at 0 rather than 1.
- ``smooth_dr``: small constant added to the denominator, against division by zero.
- ``batch``: if True, sum over the batch before the ratio (one score per class for the whole
  batch); if False, one score per image and class, averaged by ``reduction``.
- ``class_weights``: optional non-negative weight per class (length C, background included even
  when ``include_background=False``); multiplies each class's loss before the reduction (the
  mean stays a plain mean over images and classes, as in MONAI).
- ``reduction``: ``"mean"`` (default), ``"sum"``, or ``"none"`` (a (B, C') tensor, or (C',) with
  ``batch=True``, C' = classes kept).
- ``validate``: if True, raise ValueError when the input holds NaN or inf (or, with
  ``from_logits=False``, values outside [0, 1]). Off by default because it costs a device-to-host
  sync per call; the training utilities switch it on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("binary", "multiclass", "multilabel")
REDUCTIONS = ("mean", "sum", "none")
LOSS_NAMES = ("dice", "dice_ce", "generalized_dice", "tversky", "focal_tversky", "jaccard",
              "focal", "ce")

# Chunking of the fused softmax path's backward: about _CHUNKS pieces over the pixels, none
# smaller than _MIN_CHUNK_ELEMENTS logits (B * C * pixels; 8 MiB in float32). The chunk temporary
# is thus at most max(8 MiB, 1/4 of the gradient): chunking saves memory where it matters, while
# small inputs run as one chunk, because every extra torch op costs a thread wake-up, and on a
# machine whose cores are busy (data loader workers, other jobs) those waits dominate.
_CHUNKS = 4
_MIN_CHUNK_ELEMENTS = 1 << 21
# Lower bound for -log(Dice) so that log_loss stays finite when the Dice ratio is exactly 0.
_LOG_EPS = 1e-7


class OverlapSums(NamedTuple):
    """Per-class sums over the non-ignored pixels; each is (B, C), or (C,) when summed over B.

    Attributes:
        intersection: sum(p * g).
        prediction: sum(p), or sum(p ** 2) with ``squared_pred``.
        target: sum(g), or sum(g ** 2) with ``squared_pred`` (equal for 0/1 labels).
    """

    intersection: torch.Tensor
    prediction: torch.Tensor
    target: torch.Tensor


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _check_non_negative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:  # also rejects NaN
            raise ValueError(f"{name} must be >= 0, got {value}")


def _weights_buffer(name: str,
                    weights: Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
    """Turn per-class weights into a 1-D float tensor, rejecting negative or non-finite entries."""
    if weights is None:
        return None
    tensor = torch.as_tensor(weights, dtype=torch.float64).detach().clone()
    if tensor.ndim != 1 or tensor.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence (one weight per class), "
                         f"got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all() or (tensor < 0).any():
        raise ValueError(f"{name} must be finite and >= 0, got {tensor.tolist()}")
    return tensor


def _check_weight_count(name: str, weights: torch.Tensor | None, channels: int) -> None:
    """Raise ValueError unless ``weights`` (if given) has one entry per logit channel."""
    if weights is not None and weights.numel() != channels:
        raise ValueError(f"{name} has {weights.numel()} entries but the logits have "
                         f"{channels} channels")


def _accumulation_dtype(tensor: torch.Tensor) -> torch.dtype:
    """Float64 stays float64; every other float type (fp16, bf16, fp32) is summed in float32."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def _check_logits(logits: torch.Tensor, mode: str, from_logits: bool, validate: bool) -> None:
    if not torch.is_floating_point(logits):
        raise ValueError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if logits.ndim < 3:
        raise ValueError(f"logits must be (B, C, *spatial), got shape {tuple(logits.shape)}")
    channels = logits.shape[1]
    if mode == "binary" and channels != 1:
        raise ValueError(f"mode 'binary' needs 1 logit channel, got {channels} (shape "
                         f"{tuple(logits.shape)}); use 'multiclass' or 'multilabel'")
    if mode == "multiclass" and channels < 2:
        raise ValueError(f"mode 'multiclass' needs >= 2 channels, got {channels}; use 'binary'")
    if validate:
        logits = logits.detach()
        bad = int((~torch.isfinite(logits)).sum())
        if bad:
            raise ValueError(f"logits contain {bad} NaN or inf value(s) "
                             f"(shape {tuple(logits.shape)})")
        if not from_logits and (logits.min() < 0 or logits.max() > 1):
            raise ValueError("from_logits=False needs probabilities in [0, 1], got values in "
                             f"[{float(logits.min())}, {float(logits.max())}]")


def _class_ids(logits: torch.Tensor, target: torch.Tensor,
               ignore_index: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flatten multiclass ids to (B, N) int64 with ignored pixels set to 0, plus a (B, N) 0/1 mask.

    Raises ValueError when the target is not integer, has the wrong shape, or holds ids outside
    0..C-1 other than ``ignore_index``.
    """
    batch, channels, *spatial = logits.shape
    if torch.is_floating_point(target) or target.dtype == torch.bool:
        raise ValueError(f"multiclass target must hold integer class ids, got {target.dtype}")
    if target.ndim == logits.ndim and target.shape[1] == 1:
        target = target.squeeze(1)
    if tuple(target.shape) != (batch, *spatial):
        raise ValueError(f"multiclass target must be (B, *spatial) = {(batch, *spatial)} or "
                         f"(B, 1, *spatial), got {tuple(target.shape)}")
    ids = target.reshape(batch, -1).long()
    mask = None
    if ignore_index is not None:
        valid = ids != ignore_index
        ids = ids.masked_fill(~valid, 0)
        mask = valid.to(_accumulation_dtype(logits))
    if ids.numel():
        low, high = torch.aminmax(ids)
        if low < 0 or high >= channels:
            bad = torch.unique(ids[(ids < 0) | (ids >= channels)])[:8].tolist()
            raise ValueError(f"target holds class id(s) {bad} outside 0..{channels - 1} "
                             f"(logits have {channels} channels, ignore_index={ignore_index})")
    return ids, mask


def _sigmoid_target(logits: torch.Tensor, target: torch.Tensor, mode: str,
                    ignore_index: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Float target shaped like the logits (ignored entries set to 0) and its 0/1 mask or None."""
    if mode == "binary" and target.ndim == logits.ndim - 1:
        target = target.unsqueeze(1)
    if target.shape != logits.shape:
        raise ValueError(f"{mode} target must have the logits' shape {tuple(logits.shape)}"
                         f"{' (or without the channel axis)' if mode == 'binary' else ''}, "
                         f"got {tuple(target.shape)}")
    dtype = _accumulation_dtype(logits)
    mask = None
    if ignore_index is not None:
        valid = target != ignore_index
        target = target.masked_fill(~valid, 0)
        mask = valid.to(dtype)
    target = target.to(dtype)
    if target.numel() and (target.min() < 0 or target.max() > 1):
        raise ValueError(f"{mode} target values must lie in [0, 1] (besides ignore_index="
                         f"{ignore_index}), got values in [{float(target.min())}, "
                         f"{float(target.max())}]")
    return target, mask


class _FusedSoftmaxSums(torch.autograd.Function):
    """Softmax + per-class intersection/prediction sums whose backward reuses the softmax buffer.

    Why hand-written: autograd through softmax -> gather -> sum keeps the probabilities for
    backward, then allocates their gradient and the logits' gradient: about three logits-sized
    tensors at the peak (MONAI holds three as well, with its one-hot target). Here the forward
    keeps only the probabilities and the backward turns that buffer, chunk by chunk over pixels,
    into the logits' gradient in place, using the closed form

        dL/dp[c, n] = m[n] * (dL/dI[c] * [g[n] == c] + k * dL/dP[c] * p[c, n] ** (k - 1))
        dL/dz[c, n] = p[c, n] * (dL/dp[c, n] - sum_c' p[c', n] * dL/dp[c', n])

    (k = 2 for ``squared_pred`` else 1, m the ignore mask). So the peak is one logits-sized
    tensor plus a chunk temporary (see ``_chunks``) and a few (B, N) vectors, and the softmax is
    computed once. A second backward through the same graph (``retain_graph=True``) recomputes
    the softmax.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor | None,
                squared: bool) -> tuple[torch.Tensor, torch.Tensor]:
        probs = _flat_softmax(logits)
        batch, channels = probs.shape[:2]
        hit = probs.gather(1, ids.unsqueeze(1)).squeeze(1)  # p at each pixel's true class
        if mask is not None:
            hit = hit * mask
        inter = torch.zeros(batch, channels, dtype=probs.dtype, device=probs.device)
        inter = inter.scatter_add_(1, ids, hit)
        column = None if mask is None else mask.unsqueeze(2)
        if squared:
            pred = sum(_masked_sum(probs[:, :, start:stop] ** 2, column, start, stop)
                       for start, stop in _chunks(probs))
        else:
            pred = _masked_sum(probs, column, 0, probs.shape[2])
        ctx.save_for_backward(logits, ids, mask)
        ctx.squared = squared
        # Intermediates kept as attributes (not saved tensors) so backward can release them.
        ctx.probs, ctx.hit = (probs, hit) if logits.requires_grad else (None, None)
        return inter, pred

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_inter: torch.Tensor, grad_pred: torch.Tensor):
        logits, ids, mask = ctx.saved_tensors
        if ctx.probs is not None:
            grad, hit = ctx.probs, ctx.hit
            ctx.probs = ctx.hit = None  # the buffer becomes the gradient
        else:  # a second backward (retain_graph=True): recompute
            grad = _flat_softmax(logits)
            hit = grad.gather(1, ids.unsqueeze(1)).squeeze(1)
            hit = hit if mask is None else hit * mask
        grad_inter = grad_inter.to(grad.dtype)
        grad_pred = grad_pred.to(grad.dtype).unsqueeze(2)  # (B, C, 1)
        # p * dL/dI at each pixel's true class: the one-hot term of p * dL/dp, (B, 1, N).
        true_term = hit.unsqueeze(1) * grad_inter.gather(1, ids).unsqueeze(1)
        del hit
        if not ctx.squared:  # sum_c p_c dL/dp_c = true_term + dL/dP^T p, in one BLAS call
            weighted = torch.baddbmm(true_term, grad_pred.transpose(1, 2), grad)
        chunks = _chunks(grad)
        # One reusable chunk buffer for dL/dp - weighted: fresh chunk allocations would cost page
        # faults each time. Each torch op costs a thread synchronisation, which dominates on a
        # busy machine, hence two ops per chunk and the one-hot term added once at the end.
        buffer = torch.empty(*grad.shape[:2], chunks[0][1], dtype=grad.dtype, device=grad.device)
        for start, stop in chunks:
            probs = grad[:, :, start:stop]
            diff = buffer[:, :, :stop - start]
            if ctx.squared:
                torch.mul(probs, 2 * grad_pred, out=diff)
                weighted = (probs * diff).sum(dim=1, keepdim=True)
                diff.sub_(weighted.add_(true_term[:, :, start:stop]))
            else:
                torch.sub(grad_pred, weighted[:, :, start:stop], out=diff)
            probs.mul_(diff)
        grad.scatter_add_(1, ids.unsqueeze(1), true_term)
        if mask is not None:
            grad.mul_(mask.unsqueeze(1))
        return grad.view(logits.shape).to(logits.dtype), None, None, None


def _masked_sum(values: torch.Tensor, column: torch.Tensor | None, start: int,
                stop: int) -> torch.Tensor:
    """Sum (B, C, n) values over pixels, weighted by the mask column (B, N, 1) rows start:stop."""
    if column is None:
        return values.sum(dim=2)
    return torch.bmm(values, column[:, start:stop]).squeeze(2)


def _flat_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over channels of (B, C, *spatial) as a new (B, C, N) tensor in float32/float64."""
    flat = logits.reshape(*logits.shape[:2], -1)
    return torch.softmax(flat, dim=1, dtype=_accumulation_dtype(logits))


def _chunks(flat: torch.Tensor) -> list[tuple[int, int]]:
    """Split the pixel axis of (B, C, N) into about ``_CHUNKS`` ranges [start, stop).

    Few large chunks keep the op count low: each torch op costs a thread synchronisation, which
    on a busy machine dominates small ops. Four keep the chunk temporary at 1/4 of the logits'
    gradient, which with the few (B, N) vectors keeps the peak well under half MONAI's. Inputs
    up to ``_MIN_CHUNK_ELEMENTS`` are one chunk.
    """
    batch, channels, pixels = flat.shape
    step = max(-(-pixels // _CHUNKS), _MIN_CHUNK_ELEMENTS // max(1, batch * channels), 1)
    return [(start, min(start + step, pixels)) for start in range(0, pixels, step)]


def _multiclass_prob_sums(probs: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor | None,
                          squared: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute intersection and prediction sums from probs (B, C, N) and ids (B, N) by autograd."""
    hit = probs.gather(1, ids.unsqueeze(1)).squeeze(1)
    powered = probs * probs if squared else probs
    if mask is not None:
        hit = hit * mask
        powered = powered * mask.unsqueeze(1)
    inter = torch.zeros(probs.shape[:2], dtype=probs.dtype, device=probs.device)
    return inter.scatter_add(1, ids, hit), powered.sum(dim=2)


def _class_counts(ids: torch.Tensor, mask: torch.Tensor | None, channels: int,
                  dtype: torch.dtype) -> torch.Tensor:
    """Count the non-ignored pixels of each class per image, (B, C), from ids (B, N)."""
    weights = mask if mask is not None else torch.ones(1, dtype=dtype, device=ids.device)\
        .expand(ids.shape)
    counts = torch.zeros(ids.shape[0], channels, dtype=dtype, device=ids.device)
    return counts.scatter_add_(1, ids, weights)


def overlap_sums(logits: torch.Tensor, target: torch.Tensor, mode: str = "multiclass", *,
                 from_logits: bool = True, ignore_index: int | None = None,
                 squared_pred: bool = False, validate: bool = False) -> OverlapSums:
    """Compute per-image, per-class intersection, prediction and target sums (every overlap loss).

    Args:
        logits: (B, C, *spatial) scores (or probabilities when ``from_logits=False``).
        target: class ids (multiclass) or 0..1 values (binary/multilabel); see the module doc.
        mode: "binary", "multiclass" or "multilabel".
        from_logits: apply softmax (multiclass) or sigmoid (binary/multilabel) to ``logits`` first.
        ignore_index: target value whose pixels drop out of every sum, as if cropped away.
        squared_pred: sum squares of prediction and target (the "squared" Dice denominator).
        validate: check that ``logits`` hold no NaN/inf (and lie in [0, 1] for probabilities).

    Returns:
        :class:`OverlapSums` of (B, C) tensors in float32 (float64 for float64 logits).
    """
    _check_choice("mode", mode, MODES)
    _check_logits(logits, mode, from_logits, validate)
    dtype = _accumulation_dtype(logits)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        if mode == "multiclass":
            ids, mask = _class_ids(logits, target, ignore_index)
            if from_logits:
                inter, pred = _FusedSoftmaxSums.apply(logits, ids, mask, squared_pred)
            else:
                probs = logits.reshape(*logits.shape[:2], -1).to(dtype)
                inter, pred = _multiclass_prob_sums(probs, ids, mask, squared_pred)
            return OverlapSums(inter, pred, _class_counts(ids, mask, logits.shape[1], dtype))
        truth, mask = _sigmoid_target(logits, target, mode, ignore_index)
        probs = logits.to(dtype)
        if from_logits:
            probs = torch.sigmoid(probs)
        if mask is not None:
            probs = probs * mask
        axes = tuple(range(2, logits.ndim))
        inter = (probs * truth).sum(axes)
        if squared_pred:
            return OverlapSums(inter, (probs * probs).sum(axes), (truth * truth).sum(axes))
        return OverlapSums(inter, probs.sum(axes), truth.sum(axes))


def _safe_ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """Divide, defining the ratio as 1 (perfect agreement) where the denominator is 0.

    The denominator is 0 only for an empty class with ``smooth_dr=0``; without this guard the loss
    would be 0/0 = NaN there and the NaN would spread through the gradient.
    """
    tiny = torch.finfo(denominator.dtype).tiny
    return torch.where(denominator > 0, numerator / denominator.clamp_min(tiny),
                       torch.ones_like(numerator))


def _safe_pow(base: torch.Tensor, exponent: float) -> torch.Tensor:
    """Raise base >= 0 to a power, with a finite gradient at 0 even when exponent < 1."""
    tiny = torch.finfo(base.dtype).tiny
    powered = base.clamp_min(tiny) ** exponent
    return torch.where(base > 0, powered, torch.zeros_like(powered) if exponent > 0 else
                       torch.ones_like(powered))


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class _OverlapLoss(nn.Module):
    """Shared argument handling for losses computed from :func:`overlap_sums`.

    Its constructor takes the arguments every overlap loss takes (described once, in the module
    docstring); subclasses spell them out in their own signatures and pass them on. Subclasses
    implement :meth:`per_class` (loss per image and
    class from the sums) and set ``squared_pred`` if they offer it.
    """

    squared_pred = False

    def __init__(self, mode: str = "multiclass", *, from_logits: bool = True,
                 include_background: bool = True, ignore_index: int | None = None,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, batch: bool = False,
                 class_weights: Sequence[float] | torch.Tensor | None = None,
                 reduction: str = "mean", validate: bool = False) -> None:
        super().__init__()
        self.mode = _check_choice("mode", mode, MODES)
        self.reduction = _check_choice("reduction", reduction, REDUCTIONS)
        _check_non_negative(smooth_nr=smooth_nr, smooth_dr=smooth_dr)
        if ignore_index is not None and not isinstance(ignore_index, int):
            raise ValueError(f"ignore_index must be an int or None, got {ignore_index!r}")
        self.from_logits = bool(from_logits)
        self.include_background = bool(include_background)
        self.ignore_index = ignore_index
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
        self.batch = bool(batch)
        self.validate = bool(validate)
        self.register_buffer("class_weights", _weights_buffer("class_weights", class_weights))

    def sums(self, logits: torch.Tensor, target: torch.Tensor) -> OverlapSums:
        """Overlap sums with background dropped (unless kept) and summed over B when ``batch``."""
        sums = overlap_sums(logits, target, self.mode, from_logits=self.from_logits,
                            ignore_index=self.ignore_index, squared_pred=self.squared_pred,
                            validate=self.validate)
        if not self.include_background and self.mode != "binary":
            sums = OverlapSums(*(s[:, 1:] for s in sums))
        if self.batch:
            sums = OverlapSums(*(s.sum(0) for s in sums))
        return sums

    def weighted(self, loss: torch.Tensor, channels: int) -> torch.Tensor:
        """Multiply a per-class loss (last axis = kept classes) by ``class_weights``, if any."""
        if self.class_weights is None:
            return loss
        _check_weight_count("class_weights", self.class_weights, channels)
        weights = self.class_weights
        if not self.include_background and self.mode != "binary":
            weights = weights[1:]
        return loss * weights.to(loss)

    def per_class(self, sums: OverlapSums) -> torch.Tensor:
        """Loss per image and class, (B, C) or (C,) with ``batch``, from the overlap sums."""
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``logits`` (B, C, *spatial) against ``target``; see the class docstring."""
        loss = self.weighted(self.per_class(self.sums(logits, target)), logits.shape[1])
        return _reduce(loss, self.reduction)


class DiceLoss(_OverlapLoss):
    """Soft Dice loss (Milletari et al., 2016, V-Net), one score per image and class.

    For each image and class: ``1 - (2 * sum(p*g) + smooth_nr) / (sum(p) + sum(g) + smooth_dr)``,
    with ``sum(p**2) + sum(g**2)`` in the denominator when ``squared_pred``; ``-log`` of the
    ratio when ``log_loss``.

    Conventions: a class absent from the target and not predicted scores loss 0 (with
    ``smooth_nr == smooth_dr``; 1 - smooth_nr/smooth_dr in general); absent from the target but
    predicted, loss close to 1. When the denominator is exactly 0 (only with ``smooth_dr=0``) the
    ratio is defined as 1, so the loss is never NaN.

    Args:
        squared_pred: square predictions and targets in the denominator.
        log_loss: return ``-log(Dice)`` (Dice clamped at 1e-7) instead of ``1 - Dice``.
        mode, from_logits, include_background, ignore_index, smooth_nr, smooth_dr, batch,
            class_weights, reduction, validate: as every overlap loss (module docstring).

    Target checks (shape, dtype, class ids in 0..C-1 besides ``ignore_index``, binary values in
    [0, 1]) always run and raise ValueError naming the offending shape or values.
    """

    def __init__(self, mode: str = "multiclass", *, squared_pred: bool = False,
                 log_loss: bool = False, from_logits: bool = True, include_background: bool = True,
                 ignore_index: int | None = None, smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5, batch: bool = False,
                 class_weights: Sequence[float] | torch.Tensor | None = None,
                 reduction: str = "mean", validate: bool = False) -> None:
        super().__init__(mode, from_logits=from_logits, include_background=include_background,
                         ignore_index=ignore_index, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                         batch=batch, class_weights=class_weights, reduction=reduction,
                         validate=validate)
        self.squared_pred = bool(squared_pred)
        self.log_loss = bool(log_loss)

    def per_class(self, sums: OverlapSums) -> torch.Tensor:
        """Dice loss per image and class."""
        dice = _safe_ratio(2 * sums.intersection + self.smooth_nr,
                           sums.prediction + sums.target + self.smooth_dr)
        if self.log_loss:
            return -torch.log(dice.clamp_min(_LOG_EPS))
        return 1 - dice


class JaccardLoss(_OverlapLoss):
    """Soft Jaccard (IoU) loss: ``1 - (I + smooth_nr) / (P + G - I + smooth_dr)``.

    I, P, G are the intersection, prediction and target sums (squared with ``squared_pred``). This
    equals MONAI's ``DiceLoss(jaccard=True)`` with twice our smoothing constants, since MONAI
    writes the ratio as ``(2I + s) / (2(P + G - I) + s)``.

    Args:
        squared_pred: use sums of squares for P and G.
        mode, from_logits, include_background, ignore_index, smooth_nr, smooth_dr, batch,
            class_weights, reduction, validate: as every overlap loss (module docstring).

    Target checks (shape, dtype, class ids in 0..C-1 besides ``ignore_index``, binary values in
    [0, 1]) always run and raise ValueError naming the offending shape or values.
    """

    def __init__(self, mode: str = "multiclass", *, squared_pred: bool = False,
                 from_logits: bool = True, include_background: bool = True,
                 ignore_index: int | None = None, smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5, batch: bool = False,
                 class_weights: Sequence[float] | torch.Tensor | None = None,
                 reduction: str = "mean", validate: bool = False) -> None:
        super().__init__(mode, from_logits=from_logits, include_background=include_background,
                         ignore_index=ignore_index, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                         batch=batch, class_weights=class_weights, reduction=reduction,
                         validate=validate)
        self.squared_pred = bool(squared_pred)

    def per_class(self, sums: OverlapSums) -> torch.Tensor:
        """Jaccard loss per image and class."""
        union = sums.prediction + sums.target - sums.intersection
        return 1 - _safe_ratio(sums.intersection + self.smooth_nr, union + self.smooth_dr)


class TverskyLoss(_OverlapLoss):
    """Tversky loss (Salehi et al., 2017): Dice with separate weights for FP and FN.

    ``1 - (TP + smooth_nr) / (TP + alpha * FP + beta * FN + smooth_dr)`` per image and class, with
    TP = sum(p*g), FP = sum(p*(1-g)) = P - TP, FN = sum((1-p)*g) = G - TP, as MONAI's
    ``TverskyLoss``. alpha = beta = 0.5 gives Dice (up to smoothing); beta > alpha penalises
    missed pixels more, which favours recall of rare classes.

    Args:
        alpha: weight of false positives (>= 0).
        beta: weight of false negatives (>= 0).
        mode, from_logits, include_background, ignore_index, smooth_nr, smooth_dr, batch,
            class_weights, reduction, validate: as every overlap loss (module docstring).

    Target checks (shape, dtype, class ids in 0..C-1 besides ``ignore_index``, binary values in
    [0, 1]) always run and raise ValueError naming the offending shape or values.
    """

    def __init__(self, mode: str = "multiclass", *, alpha: float = 0.5, beta: float = 0.5,
                 from_logits: bool = True, include_background: bool = True,
                 ignore_index: int | None = None, smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5, batch: bool = False,
                 class_weights: Sequence[float] | torch.Tensor | None = None,
                 reduction: str = "mean", validate: bool = False) -> None:
        super().__init__(mode, from_logits=from_logits, include_background=include_background,
                         ignore_index=ignore_index, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                         batch=batch, class_weights=class_weights, reduction=reduction,
                         validate=validate)
        _check_non_negative(alpha=alpha, beta=beta)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def tversky_index(self, sums: OverlapSums) -> torch.Tensor:
        """Tversky index per image and class (1 = perfect)."""
        inter = sums.intersection
        false_pos = sums.prediction - inter
        false_neg = sums.target - inter
        return _safe_ratio(inter + self.smooth_nr,
                           inter + self.alpha * false_pos + self.beta * false_neg + self.smooth_dr)

    def per_class(self, sums: OverlapSums) -> torch.Tensor:
        """Tversky loss per image and class."""
        return 1 - self.tversky_index(sums)


class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss (Abraham & Khan, 2019): ``(1 - Tversky index) ** gamma``.

    The paper writes the exponent as 1/gamma' with gamma' = 4/3; our ``gamma`` is the exponent
    itself, so the default 0.75 is the paper's setting, as are alpha = 0.3 and beta = 0.7.
    gamma < 1 boosts the gradient of classes that are already fairly well segmented less than
    that of hard ones; the gradient stays finite when the Tversky loss is 0.

    Args:
        alpha: weight of false positives (>= 0).
        beta: weight of false negatives (>= 0).
        gamma: exponent applied to the Tversky loss (> 0).
        mode, from_logits, include_background, ignore_index, smooth_nr, smooth_dr, batch,
            class_weights, reduction, validate: as every overlap loss (module docstring).

    Target checks (shape, dtype, class ids in 0..C-1 besides ``ignore_index``, binary values in
    [0, 1]) always run and raise ValueError naming the offending shape or values.
    """

    def __init__(self, mode: str = "multiclass", *, alpha: float = 0.3, beta: float = 0.7,
                 gamma: float = 0.75, from_logits: bool = True, include_background: bool = True,
                 ignore_index: int | None = None, smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5, batch: bool = False,
                 class_weights: Sequence[float] | torch.Tensor | None = None,
                 reduction: str = "mean", validate: bool = False) -> None:
        super().__init__(mode, alpha=alpha, beta=beta, from_logits=from_logits,
                         include_background=include_background, ignore_index=ignore_index,
                         smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch,
                         class_weights=class_weights, reduction=reduction, validate=validate)
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.gamma = float(gamma)

    def per_class(self, sums: OverlapSums) -> torch.Tensor:
        """Focal Tversky loss per image and class."""
        return _safe_pow((1 - self.tversky_index(sums)).clamp_min(0), self.gamma)


class GeneralizedDiceLoss(_OverlapLoss):
    """Generalised Dice loss (Sudre et al., 2017), one score per image over all classes.

    ``1 - (2 * sum_c w_c I_c + smooth_nr) / (sum_c w_c (P_c + G_c) + smooth_dr)`` with
    w_c = 1 / G_c ** 2 (MONAI's ``w_type="square"``), so rare classes weigh as much as common
    ones. A class absent from the target (G_c = 0, infinite weight) gets the largest finite weight
    of the other classes instead, as in MONAI; if every class is absent all weights are 0 and the
    loss is 1 - smooth_nr / smooth_dr (0 with the defaults). With ``batch=True`` the sums and the
    weights are taken over the whole batch. ``reduction="none"`` gives a (B,) tensor, or (1,) with
    ``batch=True``.

    There is no ``class_weights`` argument: the weights come from the target.

    Args:
        mode, from_logits, include_background, ignore_index, smooth_nr, smooth_dr, batch,
            reduction, validate: as every overlap loss (module docstring).
    """

    def __init__(self, mode: str = "multiclass", *, from_logits: bool = True,
                 include_background: bool = True, ignore_index: int | None = None,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, batch: bool = False,
                 reduction: str = "mean", validate: bool = False) -> None:
        super().__init__(mode, from_logits=from_logits, include_background=include_background,
                         ignore_index=ignore_index, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                         batch=batch, reduction=reduction, validate=validate)

    def per_class(self, sums: OverlapSums) -> torch.Tensor:
        """Generalised Dice loss per image (the class axis is summed with weights)."""
        weights = 1 / (sums.target * sums.target)
        infinite = torch.isinf(weights)
        weights = weights.masked_fill(infinite, 0)
        largest = weights.amax(dim=-1, keepdim=True)
        weights = torch.where(infinite, largest, weights)
        numerator = 2 * (weights * sums.intersection).sum(-1, keepdim=True) + self.smooth_nr
        denominator = (weights * (sums.prediction + sums.target)).sum(-1, keepdim=True)
        loss = 1 - _safe_ratio(numerator, denominator + self.smooth_dr)
        return loss.reshape(-1)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017): cross-entropy scaled by ``(1 - p_t) ** gamma`` per pixel.

    p_t is the predicted probability of the true class (softmax for multiclass, sigmoid per channel
    for binary/multilabel, where it is ``p*g + (1-p)*(1-g)`` and soft targets are allowed).
    gamma = 0 gives plain cross-entropy; larger gamma down-weights easy, well classified pixels.

    Args:
        mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``, as for :class:`DiceLoss`.
        gamma: focusing exponent (>= 0).
        alpha: class balance. Binary/multilabel: a float in [0, 1], the weight of positives
            (negatives get 1 - alpha), as in RetinaNet. Multiclass: a sequence of C non-negative
            per-class weights applied by true class. None: no weighting.
        from_logits: the input holds raw scores (True) or probabilities (False).
        ignore_index: target value whose pixels contribute nothing.
        reduction: ``"mean"`` over non-ignored pixels (pixel-channels for sigmoid modes; 0 when
            all are ignored), ``"sum"``, or ``"none"``: per-pixel map (B, *spatial) for
            multiclass, (B, C, *spatial) otherwise, 0 at ignored pixels.
        validate: raise ValueError on NaN/inf input (off by default; see :class:`DiceLoss`).
    """

    def __init__(self, mode: str = "multiclass", gamma: float = 2.0,
                 alpha: float | Sequence[float] | None = None, from_logits: bool = True,
                 ignore_index: int | None = None, reduction: str = "mean",
                 validate: bool = False) -> None:
        super().__init__()
        self.mode = _check_choice("mode", mode, MODES)
        self.reduction = _check_choice("reduction", reduction, REDUCTIONS)
        _check_non_negative(gamma=gamma)
        self.gamma = float(gamma)
        self.from_logits = bool(from_logits)
        self.ignore_index = ignore_index
        self.validate = bool(validate)
        self.binary_alpha: float | None = None
        class_alpha = None
        if alpha is not None and mode == "multiclass":
            class_alpha = _weights_buffer("alpha", alpha)
        elif alpha is not None:
            if isinstance(alpha, Sequence) or not 0 <= float(alpha) <= 1:
                raise ValueError(f"alpha for mode {mode!r} must be a float in [0, 1], "
                                 f"got {alpha!r}")
            self.binary_alpha = float(alpha)
        self.register_buffer("alpha", class_alpha)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Focal loss of ``logits`` (B, C, *spatial) against ``target``."""
        _check_logits(logits, self.mode, self.from_logits, self.validate)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            if self.mode == "multiclass":
                loss, mask = self._multiclass(logits, target)
            else:
                loss, mask = self._sigmoid(logits, target)
        if self.reduction == "mean":
            if mask is None:
                return loss.mean() if loss.numel() else loss.sum()
            return loss.sum() / mask.sum().clamp_min(1)
        return _reduce(loss, self.reduction)

    def _multiclass(self, logits: torch.Tensor,
                    target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        ids, mask = _class_ids(logits, target, self.ignore_index)
        scores = logits.reshape(*logits.shape[:2], -1).to(_accumulation_dtype(logits))
        if self.from_logits:
            log_prob = torch.log_softmax(scores, dim=1)
        else:
            log_prob = torch.log(scores.clamp_min(torch.finfo(scores.dtype).tiny))
        log_true = log_prob.gather(1, ids.unsqueeze(1)).squeeze(1)
        loss = -_safe_pow(-torch.expm1(log_true), self.gamma) * log_true
        if self.alpha is not None:
            _check_weight_count("alpha", self.alpha, logits.shape[1])
            loss = loss * self.alpha.to(loss)[ids]
        if mask is not None:
            loss = loss * mask
        return loss.reshape(logits.shape[0], *logits.shape[2:]), mask

    def _sigmoid(self, logits: torch.Tensor,
                 target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        truth, mask = _sigmoid_target(logits, target, self.mode, self.ignore_index)
        scores = logits.to(truth.dtype)
        if self.from_logits:
            prob = torch.sigmoid(scores)
            ce = F.binary_cross_entropy_with_logits(scores, truth, reduction="none")
        else:
            prob = scores
            ce = F.binary_cross_entropy(scores, truth, reduction="none")
        p_true = prob * truth + (1 - prob) * (1 - truth)
        loss = _safe_pow((1 - p_true).clamp_min(0), self.gamma) * ce
        if self.binary_alpha is not None:
            loss = loss * (self.binary_alpha * truth + (1 - self.binary_alpha) * (1 - truth))
        if mask is not None:
            loss = loss * mask
        return loss, mask


class DiceCELoss(nn.Module):
    """Weighted sum ``lambda_dice * Dice + lambda_ce * cross-entropy`` (as MONAI's DiceCELoss).

    Cross-entropy is softmax CE for multiclass and BCE-with-logits for binary/multilabel, averaged
    over the non-ignored pixels (0, not NaN, when every pixel is ignored), with the same
    ``ignore_index`` and, if given, ``class_weights`` as the Dice term (CE then divides by the sum
    of the weights of the counted pixels, as torch's ``cross_entropy``). Requires logits
    (``from_logits`` is always True).

    Args:
        lambda_dice: weight of the Dice term (>= 0).
        lambda_ce: weight of the cross-entropy term (>= 0).
        reduction: ``"mean"`` or ``"sum"`` (applied to both terms; "none" is not defined for a
            sum of per-class and per-pixel terms).
        squared_pred, log_loss: as for :class:`DiceLoss`.
        mode, include_background, ignore_index, smooth_nr, smooth_dr, batch, class_weights,
            validate: as every overlap loss (module docstring); ``from_logits`` is not taken.
    """

    def __init__(self, mode: str = "multiclass", *, lambda_dice: float = 1.0,
                 lambda_ce: float = 1.0, squared_pred: bool = False, log_loss: bool = False,
                 include_background: bool = True, ignore_index: int | None = None,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, batch: bool = False,
                 class_weights: Sequence[float] | torch.Tensor | None = None,
                 reduction: str = "mean", validate: bool = False) -> None:
        super().__init__()
        _check_choice("reduction", reduction, ("mean", "sum"))
        _check_non_negative(lambda_dice=lambda_dice, lambda_ce=lambda_ce)
        self.dice = DiceLoss(mode, squared_pred=squared_pred, log_loss=log_loss,
                             include_background=include_background, ignore_index=ignore_index,
                             smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch,
                             class_weights=class_weights, reduction=reduction, validate=validate)
        self.lambda_dice = float(lambda_dice)
        self.lambda_ce = float(lambda_ce)

    def cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy term alone, reduced like the Dice term."""
        dice = self.dice
        weights = dice.class_weights
        _check_weight_count("class_weights", weights, logits.shape[1])
        with torch.autocast(device_type=logits.device.type, enabled=False):
            scores = logits.to(_accumulation_dtype(logits))
            weights = None if weights is None else weights.to(scores)
            if dice.mode == "multiclass":
                ids, mask = _class_ids(logits, target, dice.ignore_index)
                flat = scores.reshape(*scores.shape[:2], -1)
                total = F.cross_entropy(flat, ids, weight=weights, reduction="none")
                count = torch.ones_like(total) if weights is None else weights[ids]
            else:
                truth, mask = _sigmoid_target(logits, target, dice.mode, dice.ignore_index)
                shape = (1, -1) + (1,) * (logits.ndim - 2)
                weights = None if weights is None else weights.reshape(shape)
                total = F.binary_cross_entropy_with_logits(scores, truth, weight=weights,
                                                           reduction="none")
                count = torch.ones_like(total) if weights is None else weights.expand_as(total)
            if mask is not None:
                total = total * mask.reshape(total.shape)
                count = count * mask.reshape(total.shape)
        if dice.reduction == "sum":
            return total.sum()
        return total.sum() / count.sum().clamp_min(torch.finfo(count.dtype).tiny)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the combined loss of ``logits`` (B, C, *spatial) against ``target``."""
        dice = self.dice(logits, target)
        return self.lambda_dice * dice + self.lambda_ce * self.cross_entropy(logits, target)


def make_loss(name: str, num_classes: int, ignore_index: int | None = None,
              **kwargs) -> nn.Module:
    """Build a loss by name for training and the loss study.

    Args:
        name: one of ``dice``, ``dice_ce``, ``generalized_dice``, ``tversky``, ``focal_tversky``,
            ``jaccard``, ``focal``, ``ce`` (``torch.nn.CrossEntropyLoss``).
        num_classes: number of logit channels; 1 selects ``mode="binary"`` and >= 2
            ``"multiclass"`` unless ``mode`` is passed. Per-class arguments (``class_weights``,
            focal ``alpha`` sequences) are checked against it here rather than at the first batch.
        ignore_index: target value to ignore (e.g. 255), or None.
        **kwargs: further constructor arguments of the chosen loss.

    Returns:
        The loss module, called as ``loss(logits, target)``.
    """
    builders = {"dice": DiceLoss, "dice_ce": DiceCELoss, "generalized_dice": GeneralizedDiceLoss,
                "tversky": TverskyLoss, "focal_tversky": FocalTverskyLoss, "jaccard": JaccardLoss,
                "focal": FocalLoss}
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}; choose one of {list(LOSS_NAMES)}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    for key in ("class_weights", "alpha", "weight"):
        value = kwargs.get(key)
        if isinstance(value, (Sequence, torch.Tensor)) and len(value) != num_classes:
            raise ValueError(f"{key} has {len(value)} entries, expected num_classes={num_classes}")
    if name == "ce":
        return nn.CrossEntropyLoss(ignore_index=-100 if ignore_index is None else ignore_index,
                                   **kwargs)
    kwargs.setdefault("mode", "binary" if num_classes == 1 else "multiclass")
    return builders[name](ignore_index=ignore_index, **kwargs)
