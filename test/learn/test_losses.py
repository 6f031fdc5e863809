import inspect
import math
import re

import pytest
import torch

from dice_seg_ros.learn import losses
from dice_seg_ros.learn.losses import (DiceCELoss, DiceLoss, FocalLoss, FocalTverskyLoss,
                                       GeneralizedDiceLoss, JaccardLoss, TverskyLoss, make_loss,
                                       overlap_sums)

torch.set_num_threads(1)

OVERLAP = [DiceLoss, JaccardLoss, TverskyLoss, FocalTverskyLoss, GeneralizedDiceLoss]
ALL = OVERLAP + [FocalLoss, DiceCELoss]


def _inputs(mode, shape=(2, 3, 4, 5), seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    batch, channels, *spatial = shape
    if mode == "binary":
        channels = 1
    logits = torch.randn(batch, channels, *spatial, generator=gen, dtype=dtype)
    if mode == "multiclass":
        target = torch.randint(0, channels, (batch, *spatial), generator=gen)
    else:
        target = torch.randint(0, 2, (batch, channels, *spatial), generator=gen).to(dtype)
    return logits.requires_grad_(), target


def _make(cls, mode, **kwargs):
    if cls is FocalLoss:
        kwargs.pop("include_background", None)
    return cls(mode=mode, **kwargs)


# ---------------------------------------------------------------- hand-computed values

def test_dice_binary_hand_computed():
    probs = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    # I = 1, P = 2, G = 2: Dice = 2/4.
    loss = DiceLoss("binary", from_logits=False, smooth_nr=0, smooth_dr=0)(probs, target)
    assert loss.item() == pytest.approx(0.5)
    squared = DiceLoss("binary", from_logits=False, smooth_nr=1, smooth_dr=1,
                       squared_pred=True)(probs * 0.5, target)
    # I = 0.5, sum p^2 = 0.5, G = 2: 1 - (1 + 1) / (2.5 + 1).
    assert squared.item() == pytest.approx(1 - 2 / 3.5)


def test_multiclass_hand_computed_all_losses():
    # One image, two pixels, three classes; target ids [0, 2].
    probs = torch.tensor([[[0.5, 0.2], [0.3, 0.2], [0.2, 0.6]]]).unsqueeze(-1)
    target = torch.tensor([[[0], [2]]])
    inter = torch.tensor([0.5, 0.0, 0.6])
    pred = torch.tensor([0.7, 0.5, 0.8])
    true = torch.tensor([1.0, 0.0, 1.0])
    kw = dict(from_logits=False, smooth_nr=0.0, smooth_dr=0.0, reduction="none")
    dice = DiceLoss(**kw)(probs, target)
    assert torch.allclose(dice, 1 - 2 * inter / (pred + true))
    jac = JaccardLoss(**kw)(probs, target)
    assert torch.allclose(jac, 1 - inter / (pred + true - inter))
    tv = TverskyLoss(alpha=0.3, beta=0.7, **kw)(probs, target)
    expected_tv = 1 - inter / (inter + 0.3 * (pred - inter) + 0.7 * (true - inter))
    assert torch.allclose(tv, expected_tv)
    ftv = FocalTverskyLoss(alpha=0.3, beta=0.7, gamma=2.0, **kw)(probs, target)
    assert torch.allclose(ftv, expected_tv ** 2)
    gdl = GeneralizedDiceLoss(**kw)(probs, target)
    weights = torch.tensor([1.0, 1.0, 1.0])  # class 1 absent -> largest finite weight (1)
    expected_gdl = 1 - 2 * (weights * inter).sum() / (weights * (pred + true)).sum()
    assert torch.allclose(gdl, expected_gdl.reshape(1))
    log_dice = DiceLoss(log_loss=True, **{**kw, "smooth_nr": 1e-5, "smooth_dr": 1e-5})
    expected_log = -torch.log((2 * inter + 1e-5) / (pred + true + 1e-5))
    assert torch.allclose(log_dice(probs, target), expected_log)


def test_focal_and_dice_ce_hand_computed():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    log_p = torch.log_softmax(logits, 1)[0, :, 0]
    log_true = torch.stack([log_p[0, 0], log_p[1, 1]])
    p_true = log_true.exp()
    focal = FocalLoss(gamma=2.0)(logits, target)
    assert focal.item() == pytest.approx((-(1 - p_true) ** 2 * log_true).mean().item())
    alpha = FocalLoss(gamma=0.0, alpha=[0.25, 0.75], reduction="sum")(logits, target)
    assert alpha.item() == pytest.approx(-(0.25 * log_true[0] + 0.75 * log_true[1]).item())
    combo = DiceCELoss(lambda_dice=0.3, lambda_ce=2.0)(logits, target)
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert combo.item() == pytest.approx(0.3 * DiceLoss()(logits, target).item()
                                         + 2.0 * ce.item())


def test_binary_focal_matches_formula():
    logits = torch.tensor([[[[1.5, -0.5, 0.2]]]])
    target = torch.tensor([[[[1.0, 0.0, 0.0]]]])
    p = torch.sigmoid(logits)
    p_true = p * target + (1 - p) * (1 - target)
    weight = 0.25 * target + 0.75 * (1 - target)
    expected = (-weight * (1 - p_true) ** 2 * torch.log(p_true)).mean()
    got = FocalLoss("binary", gamma=2.0, alpha=0.25)(logits, target)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("mode", losses.MODES)
@pytest.mark.parametrize("cls", ALL)
def test_gradcheck_every_loss_and_mode(cls, mode):
    logits, target = _inputs(mode, shape=(2, 3, 3, 2))
    loss = _make(cls, mode, ignore_index=None)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,))


@pytest.mark.parametrize("cls", OVERLAP)
def test_gradcheck_with_ignore_and_options(cls):
    logits, target = _inputs("multiclass", shape=(2, 3, 3, 3))
    target[0, 0, :] = 255
    kwargs = dict(include_background=False, batch=True, ignore_index=255)
    if cls in (DiceLoss, JaccardLoss):
        kwargs["squared_pred"] = True
    loss = cls(**kwargs)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,))


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("ignore", [None, 4])
def test_fused_chunks_match_autograd_reference(monkeypatch, squared, ignore):
    # Force several uneven chunks so the chunk loop and its reusable buffer are exercised.
    monkeypatch.setattr(losses, "_MIN_CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(losses, "_CHUNKS", 3)
    logits, target = _inputs("multiclass", shape=(2, 4, 5, 7))
    if ignore is not None:
        target[:, 1:3, 2:5] = ignore
    fused = DiceLoss(squared_pred=squared, ignore_index=ignore, reduction="sum",
                     class_weights=[0.5, 1.0, 2.0, 0.0])
    reference = DiceLoss(squared_pred=squared, ignore_index=ignore, reduction="sum",
                         class_weights=[0.5, 1.0, 2.0, 0.0], from_logits=False)
    value = fused(logits, target)
    grad, = torch.autograd.grad(value, logits)
    ref_value = reference(torch.softmax(logits, 1), target)
    ref_grad, = torch.autograd.grad(ref_value, logits)
    assert torch.allclose(value, ref_value, atol=1e-12)
    assert torch.allclose(grad, ref_grad, atol=1e-12)


def test_fused_backward_twice_with_retain_graph():
    logits, target = _inputs("multiclass")
    loss = DiceLoss()(logits, target)
    first, = torch.autograd.grad(loss, logits, retain_graph=True)
    second, = torch.autograd.grad(loss, logits)
    assert torch.allclose(first, second, atol=1e-14)


def test_fused_gradient_reuses_the_softmax_buffer(monkeypatch):
    # The fused backward turns the forward's softmax buffer into the gradient in place, so
    # logits.grad must live in that very storage: no second logits-sized tensor.
    pointers = []
    original = losses._flat_softmax

    def recording(logits):
        probs = original(logits)
        pointers.append(probs.data_ptr())
        return probs

    monkeypatch.setattr(losses, "_flat_softmax", recording)
    logits, target = _inputs("multiclass", shape=(2, 3, 8, 8), dtype=torch.float32)
    DiceLoss(ignore_index=0)(logits, target).backward()
    assert pointers == [logits.grad.data_ptr()]


# ---------------------------------------------------------------- ignore_index

def _crop_pairs(mode):
    logits, target = _inputs(mode, shape=(2, 3, 4, 6), seed=3)
    ignored = target.clone()
    if mode == "multiclass":
        ignored[..., 4:] = 255
    else:
        ignored[..., 4:] = 255.0
    cropped_logits = logits.detach()[..., :4].clone().requires_grad_()
    return logits, ignored, cropped_logits, target[..., :4]


@pytest.mark.parametrize("mode", losses.MODES)
@pytest.mark.parametrize("cls", ALL)
def test_ignored_pixels_behave_as_cropped(cls, mode):
    logits, ignored, cropped_logits, cropped_target = _crop_pairs(mode)
    full = _make(cls, mode, ignore_index=255)(logits, ignored)
    crop = _make(cls, mode, ignore_index=255)(cropped_logits, cropped_target)
    assert torch.allclose(full, crop, atol=1e-12)
    full.backward()
    crop.backward()
    assert torch.allclose(logits.grad[..., :4], cropped_logits.grad, atol=1e-12)
    assert torch.count_nonzero(logits.grad[..., 4:]) == 0


def test_make_loss_ce_honours_ignore_index():
    logits, ignored, cropped_logits, cropped_target = _crop_pairs("multiclass")
    ce = make_loss("ce", 3, ignore_index=255)
    assert torch.allclose(ce(logits, ignored), ce(cropped_logits, cropped_target))


# ---------------------------------------------------------------- empty classes

def test_empty_class_conventions():
    onehot = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    onehot[:, 0] = 1.0
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    per_class = DiceLoss(from_logits=False, reduction="none")(onehot, target)
    # Class 0 perfect; classes 1 and 2 absent from target and prediction -> 0, not NaN.
    assert torch.allclose(per_class, torch.zeros(1, 3, dtype=torch.float64), atol=1e-9)
    predicted = onehot.clone()
    predicted[:, 0, 0, 0], predicted[:, 1, 0, 0] = 0.0, 1.0
    missed = DiceLoss(from_logits=False, reduction="none")(predicted, target)
    assert missed[0, 1].item() == pytest.approx(1.0, abs=1e-4)  # predicted but absent
    strict = DiceLoss(from_logits=False, smooth_nr=0, smooth_dr=0, reduction="none")
    assert torch.equal(strict(onehot, target)[0, 1:], torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("smooth", [0.0, 1e-5])
def test_all_pixels_ignored_gives_finite_loss_and_gradient(cls, smooth):
    logits, target = _inputs("multiclass")
    target = torch.full_like(target, 255)
    kwargs = {"ignore_index": 255}
    if cls is not FocalLoss:
        kwargs.update(smooth_nr=smooth, smooth_dr=smooth)
    if cls is DiceCELoss:
        kwargs.pop("smooth_nr"), kwargs.pop("smooth_dr")
    loss = cls(**kwargs)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert torch.count_nonzero(logits.grad) == 0


def test_generalized_dice_absent_class_takes_max_weight():
    probs = torch.tensor([[[0.6, 0.1, 0.5], [0.3, 0.2, 0.4], [0.1, 0.7, 0.1]]]).unsqueeze(-1)
    target = torch.tensor([[0, 0, 2]]).unsqueeze(-1)
    sums = overlap_sums(probs, target, from_logits=False)
    weights = torch.tensor([1 / 4, 1.0, 1.0])  # absent class 1 -> max(1/4, 1/1)
    numerator = 2 * (weights * sums.intersection[0]).sum()
    denominator = (weights * (sums.prediction[0] + sums.target[0])).sum()
    got = GeneralizedDiceLoss(from_logits=False, smooth_nr=0, smooth_dr=0)(probs, target)
    assert got.item() == pytest.approx(1 - (numerator / denominator).item())


def test_focal_tversky_gradient_finite_at_perfect_prediction():
    probs = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    probs[:, 0] = 1.0
    probs.requires_grad_()
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    loss = FocalTverskyLoss(from_logits=False, gamma=0.5)(probs, target)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(probs.grad).all()


# ---------------------------------------------------------------- shapes, 3D, reductions

@pytest.mark.parametrize("mode", losses.MODES)
def test_3d_equals_2d_with_depth_folded(mode):
    logits, target = _inputs(mode, shape=(2, 3, 2, 3, 4))
    folded_logits = logits.detach().reshape(*logits.shape[:2], 6, 4)
    folded_target = target.reshape(*target.shape[:-3], 6, 4)
    for cls in ALL:
        volume = _make(cls, mode)(logits, target)
        plane = _make(cls, mode)(folded_logits, folded_target)
        assert torch.allclose(volume, plane, atol=1e-12), cls.__name__


def test_gradcheck_3d():
    logits, target = _inputs("multiclass", shape=(1, 3, 2, 2, 3))
    loss = DiceCELoss(ignore_index=None)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,))


def test_target_with_channel_axis_and_uint8_ids():
    logits, target = _inputs("multiclass")
    plain = DiceLoss()(logits, target)
    assert torch.equal(plain, DiceLoss()(logits, target.unsqueeze(1)))
    assert torch.equal(plain, DiceLoss()(logits, target.to(torch.uint8)))


def test_reduction_shapes():
    logits, target = _inputs("multiclass", shape=(2, 4, 3, 3))
    assert DiceLoss(reduction="none")(logits, target).shape == (2, 4)
    assert DiceLoss(reduction="none", include_background=False)(logits, target).shape == (2, 3)
    assert DiceLoss(reduction="none", batch=True)(logits, target).shape == (4,)
    assert GeneralizedDiceLoss(reduction="none")(logits, target).shape == (2,)
    assert GeneralizedDiceLoss(reduction="none", batch=True)(logits, target).shape == (1,)
    assert FocalLoss(reduction="none")(logits, target).shape == (2, 3, 3)
    per = DiceLoss(reduction="none")(logits, target)
    assert DiceLoss(reduction="sum")(logits, target).item() == pytest.approx(per.sum().item())
    assert DiceLoss()(logits, target).item() == pytest.approx(per.mean().item())


def test_class_weights_scale_per_class_loss():
    logits, target = _inputs("multiclass", shape=(2, 3, 3, 3))
    plain = DiceLoss(reduction="none", include_background=False)(logits, target)
    weighted = DiceLoss(reduction="none", include_background=False,
                        class_weights=[9.0, 2.0, 0.5])(logits, target)
    assert torch.allclose(weighted, plain * torch.tensor([2.0, 0.5], dtype=torch.float64))


# ---------------------------------------------------------------- low precision

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_low_precision_is_finite(dtype):
    conv = torch.nn.Conv2d(3, 6, 3, padding=1)
    image = torch.randn(2, 3, 16, 16) * 50
    target = torch.randint(0, 6, (2, 16, 16))
    target[:, :4] = 255
    try:
        with torch.autocast("cpu", dtype=dtype):
            logits = conv(image) * 100
            values = [cls(ignore_index=255)(logits, target) for cls in ALL]
    except RuntimeError as error:  # fp16 autocast support on CPU depends on the build
        pytest.skip(f"{dtype} autocast unavailable on CPU: {error}")
    assert logits.dtype == dtype
    for value in values:
        assert value.dtype == torch.float32 and torch.isfinite(value)
    sum(values).backward()
    assert all(torch.isfinite(p.grad).all() for p in conv.parameters())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mode", losses.MODES)
def test_half_logits_close_to_float32(dtype, mode):
    logits, target = _inputs(mode, dtype=torch.float32)
    half = logits.detach().to(dtype).requires_grad_()
    reference = DiceLoss(mode)(half.detach().float(), target)
    got = DiceLoss(mode)(half, target)
    got.backward()
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(reference.item(), abs=1e-5)
    assert half.grad.dtype == dtype and torch.isfinite(half.grad).all()


# ---------------------------------------------------------------- validation

def test_nan_logits_raise_only_when_validating():
    logits, target = _inputs("multiclass")
    bad = logits.detach().clone()
    bad[0, 0, 0, 0] = math.nan
    bad[1, 1, 0, 0] = math.inf
    for cls in ALL:
        with pytest.raises(ValueError, match="2 NaN or inf"):
            cls(validate=True)(bad, target)
        cls()(bad, target)  # hot loop: no check, no error


def test_probability_range_checked_when_validating():
    logits, target = _inputs("multiclass")
    with pytest.raises(ValueError, match="probabilities in"):
        DiceLoss(from_logits=False, validate=True)(logits, target)


@pytest.mark.parametrize("bad", [dict(mode="softmax"), dict(reduction="avg"),
                                 dict(smooth_dr=-1.0), dict(smooth_nr=math.nan)])
def test_bad_constructor_arguments(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        DiceLoss(**bad)


@pytest.mark.parametrize("kwargs, name", [(dict(alpha=-0.1), "alpha"), (dict(beta=-1), "beta")])
def test_tversky_rejects_negative_alpha_beta(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TverskyLoss(**kwargs)
    with pytest.raises(ValueError, match=name):
        FocalTverskyLoss(**kwargs)


def test_other_argument_errors():
    with pytest.raises(ValueError, match="gamma"):
        FocalTverskyLoss(gamma=0)
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss("binary", alpha=1.5)
    with pytest.raises(ValueError, match="class_weights"):
        DiceLoss(class_weights=[1.0, -2.0])
    with pytest.raises(ValueError, match="reduction"):
        DiceCELoss(reduction="none")
    with pytest.raises(ValueError, match="lambda_ce"):
        DiceCELoss(lambda_ce=-1)
    with pytest.raises(ValueError, match="ignore_index"):
        DiceLoss(ignore_index=2.5)


@pytest.mark.parametrize("cls, name, value", [(GeneralizedDiceLoss, "class_weights", [1.0, 1.0]),
                                              (DiceCELoss, "from_logits", False),
                                              (TverskyLoss, "squared_pred", True),
                                              (FocalTverskyLoss, "squared_pred", True)])
def test_arguments_a_loss_does_not_take_are_refused(cls, name, value):
    with pytest.raises(TypeError, match=name):
        cls(**{name: value})


def test_every_overlap_loss_takes_the_documented_shared_arguments():
    shared = {"from_logits": False, "include_background": False, "ignore_index": 255,
              "smooth_nr": 0.5, "smooth_dr": 0.25, "batch": True, "reduction": "sum",
              "validate": True}
    for cls in OVERLAP:
        weights = {} if cls is GeneralizedDiceLoss else {"class_weights": [1.0, 2.0]}
        loss = cls("multilabel", **shared, **weights)
        assert loss.mode == "multilabel"
        assert {name: getattr(loss, name) for name in shared} == shared
        assert (loss.class_weights is None) == (cls is GeneralizedDiceLoss)


@pytest.mark.parametrize("cls", [*OVERLAP, DiceCELoss])
def test_signatures_are_explicit_and_documented(cls):
    # IDEs and inspect.signature see every argument: no **kwargs, each one documented.
    params = inspect.signature(cls).parameters
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    common = {"mode", "include_background", "ignore_index", "smooth_nr", "smooth_dr", "batch",
              "reduction", "validate"}
    assert common <= set(params)
    args_section = cls.__doc__.split("Args:", 1)[1]
    for name in params:
        assert re.search(rf"\b{name}\b[,:]", args_section), f"{cls.__name__}: {name} undocumented"
        if name in common:
            assert f"``{name}``:" in losses.__doc__, name
    assert ("class_weights" in params) != (cls is GeneralizedDiceLoss)
    assert ("from_logits" in params) != (cls is DiceCELoss)


def test_target_ids_out_of_range_are_named():
    logits, target = _inputs("multiclass")
    target[0, 0, 0] = 7
    target[1, 0, 0] = -1
    for cls in ALL:
        with pytest.raises(ValueError, match=r"\[-1, 7\] outside 0\.\.2"):
            cls()(logits, target)
    target[0, 0, 0] = 255
    target[1, 0, 0] = 0
    with pytest.raises(ValueError, match=r"\[255\]"):
        DiceLoss()(logits, target)
    DiceLoss(ignore_index=255)(logits, target)


def test_shape_and_dtype_errors():
    logits, target = _inputs("multiclass")
    with pytest.raises(ValueError, match=r"\(2, 4, 5\)"):
        DiceLoss()(logits, target[:, :, :4])
    with pytest.raises(ValueError, match="integer class ids"):
        DiceLoss()(logits, target.double())
    with pytest.raises(ValueError, match="'binary' needs 1"):
        DiceLoss("binary")(logits, target)
    with pytest.raises(ValueError, match=">= 2 channels"):
        DiceLoss()(logits[:, :1], target)
    with pytest.raises(ValueError, match="class_weights has 2"):
        DiceLoss(class_weights=[1.0, 1.0])(logits, target)
    with pytest.raises(ValueError, match="alpha has 2"):
        FocalLoss(alpha=[1.0, 1.0])(logits, target)
    with pytest.raises(ValueError, match=r"\(B, C, \*spatial\)"):
        DiceLoss()(logits[0, 0], target)
    ml_logits, ml_target = _inputs("multilabel")
    with pytest.raises(ValueError, match="multilabel target must have"):
        DiceLoss("multilabel")(ml_logits, ml_target[:, :2])
    with pytest.raises(ValueError, match=r"in \[0, 1\].*\[0.0, 3.0\]"):
        DiceLoss("multilabel")(ml_logits, ml_target * 3)


# ---------------------------------------------------------------- factory

@pytest.mark.parametrize("name", losses.LOSS_NAMES)
def test_make_loss_builds_every_name(name):
    logits, target = _inputs("multiclass")
    target[0, 0, 0] = 255
    loss = make_loss(name, 3, ignore_index=255)
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


def test_make_loss_arguments():
    assert make_loss("dice", 1).mode == "binary"
    assert make_loss("tversky", 4, alpha=0.2, beta=0.8).beta == 0.8
    with pytest.raises(ValueError, match="unknown loss 'dize'"):
        make_loss("dize", 3)
    with pytest.raises(ValueError, match="num_classes"):
        make_loss("dice", 0)
    with pytest.raises(ValueError, match="class_weights has 2 entries"):
        make_loss("dice_ce", 3, class_weights=[1.0, 2.0])


def test_channels_last_logits_match_contiguous():
    logits, target = _inputs("multiclass", shape=(2, 3, 4, 5))
    strided = logits.detach().to(memory_format=torch.channels_last).requires_grad_()
    value = DiceLoss(ignore_index=None)(strided, target)
    value.backward()
    expected = DiceLoss()(logits, target)
    expected.backward()
    assert torch.allclose(value, expected, atol=1e-14)
    assert torch.allclose(strided.grad, logits.grad, atol=1e-14)


@pytest.mark.parametrize("loss, name", [(DiceLoss(class_weights=[1.0, 2.0]), "class_weights"),
                                        (DiceCELoss(class_weights=[1.0, 2.0]), "class_weights"),
                                        (FocalLoss(alpha=[1.0, 2.0]), "alpha")])
def test_per_class_weights_must_match_channels(loss, name):
    logits, target = _inputs("multiclass")  # 3 channels
    with pytest.raises(ValueError, match=f"{name} has 2 entries but the logits have 3 channels"):
        loss(logits, target)
