"""Values and gradients of the overlap losses against MONAI (test-only dependency), float64."""

import itertools

import pytest
import torch

from dice_seg_ros.learn.losses import DiceLoss, GeneralizedDiceLoss, JaccardLoss, TverskyLoss

monai_losses = pytest.importorskip("monai.losses")

torch.set_num_threads(1)
TOL = 1e-6


def _inputs(mode, spatial=(4, 5), seed=0):
    gen = torch.Generator().manual_seed(seed)
    channels = 1 if mode == "binary" else 4
    logits = torch.randn(2, channels, *spatial, generator=gen, dtype=torch.float64) * 2
    if mode == "multiclass":
        target = torch.randint(0, channels, (2, *spatial), generator=gen)
        target[1][target[1] == 2] = 3  # class 2 absent from image 1: empty-class handling
        monai_target = target.unsqueeze(1)
    else:
        target = torch.randint(0, 2, logits.shape, generator=gen).to(torch.float64)
        target[1, -1] = 0.0  # last channel of image 1 empty
        monai_target = target
    return logits, target, monai_target


def _activation(mode):
    if mode == "multiclass":
        return dict(to_onehot_y=True, softmax=True)
    return dict(sigmoid=True)


def _compare(ours, theirs, mode, spatial=(4, 5)):
    logits, target, monai_target = _inputs(mode, spatial)
    ours_logits = logits.clone().requires_grad_()
    theirs_logits = logits.clone().requires_grad_()
    value = ours(ours_logits, target)
    expected = theirs(theirs_logits, monai_target)
    # MONAI keeps broadcastable (B, C, 1, 1) shapes for reduction="none".
    assert value.numel() == expected.numel()
    torch.testing.assert_close(value.reshape(-1), expected.reshape(-1).to(value), atol=TOL,
                               rtol=0)
    weights = torch.linspace(0.5, 1.5, value.numel(), dtype=torch.float64)
    (value.reshape(-1) * weights).sum().backward()
    (expected.reshape(-1) * weights).sum().backward()
    torch.testing.assert_close(ours_logits.grad, theirs_logits.grad, atol=TOL, rtol=0)


MODES = ["multiclass", "binary", "multilabel"]
GRID = list(itertools.product(MODES, [True, False], [False, True], ["mean", "sum", "none"]))


@pytest.mark.parametrize("mode, include_background, batch, reduction", GRID)
@pytest.mark.parametrize("squared_pred", [False, True])
def test_dice_matches_monai(mode, include_background, batch, reduction, squared_pred):
    kwargs = dict(include_background=include_background, batch=batch, reduction=reduction,
                  squared_pred=squared_pred)
    ours = DiceLoss(mode, **kwargs)
    theirs = monai_losses.DiceLoss(**_activation(mode), **kwargs)
    with pytest.warns(UserWarning) if mode == "binary" and not include_background else _nullcm():
        _compare(ours, theirs, mode)


@pytest.mark.parametrize("smooth_nr, smooth_dr", [(0.0, 1e-5), (1.0, 1.0), (1e-3, 0.5)])
@pytest.mark.parametrize("mode", MODES)
def test_dice_smoothing_and_weights_match_monai(smooth_nr, smooth_dr, mode):
    # MONAI ignores `weight` for a single channel, so binary runs unweighted.
    weights = None if mode == "binary" else [0.5, 1.0, 2.0, 0.25]
    ours = DiceLoss(mode, smooth_nr=smooth_nr, smooth_dr=smooth_dr, class_weights=weights,
                    include_background=False)
    kept = None if weights is None else weights[1:]
    theirs = monai_losses.DiceLoss(**_activation(mode), smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                                   weight=kept, include_background=mode == "binary")
    _compare(ours, theirs, mode)


@pytest.mark.parametrize("mode", MODES)
def test_dice_3d_matches_monai(mode):
    kwargs = dict(reduction="none", squared_pred=True)
    _compare(DiceLoss(mode, **kwargs), monai_losses.DiceLoss(**_activation(mode), **kwargs),
             mode, spatial=(2, 3, 4))


@pytest.mark.parametrize("mode, include_background, batch, reduction", GRID)
def test_jaccard_matches_monai(mode, include_background, batch, reduction):
    kwargs = dict(include_background=include_background, batch=batch, reduction=reduction)
    # Our ratio is (I + s_nr) / (U + s_dr); MONAI's is (2I + s_nr) / (2U + s_dr).
    ours = JaccardLoss(mode, smooth_nr=0.5e-3, smooth_dr=1e-3, **kwargs)
    theirs = monai_losses.DiceLoss(**_activation(mode), jaccard=True, smooth_nr=1e-3,
                                   smooth_dr=2e-3, **kwargs)
    with pytest.warns(UserWarning) if mode == "binary" and not include_background else _nullcm():
        _compare(ours, theirs, mode)


@pytest.mark.parametrize("mode, include_background, batch, reduction", GRID)
def test_generalized_dice_matches_monai(mode, include_background, batch, reduction):
    kwargs = dict(include_background=include_background, batch=batch, reduction=reduction)
    ours = GeneralizedDiceLoss(mode, **kwargs)
    theirs = monai_losses.GeneralizedDiceLoss(**_activation(mode), **kwargs)
    with pytest.warns(UserWarning) if mode == "binary" and not include_background else _nullcm():
        _compare(ours, theirs, mode)


@pytest.mark.parametrize("mode, include_background, batch, reduction", GRID)
@pytest.mark.parametrize("alpha, beta", [(0.5, 0.5), (0.3, 0.7)])
def test_tversky_matches_monai(mode, include_background, batch, reduction, alpha, beta):
    kwargs = dict(include_background=include_background, batch=batch, reduction=reduction)
    ours = TverskyLoss(mode, alpha=alpha, beta=beta, smooth_nr=1e-3, **kwargs)
    theirs = monai_losses.TverskyLoss(**_activation(mode), alpha=alpha, beta=beta,
                                      smooth_nr=1e-3, **kwargs)
    with pytest.warns(UserWarning) if mode == "binary" and not include_background else _nullcm():
        _compare(ours, theirs, mode)


def test_ignore_index_matches_monai():
    logits, target, _ = _inputs("multiclass", seed=4)
    target[:, :2, :] = 255
    ours_logits = logits.clone().requires_grad_()
    theirs_logits = logits.clone().requires_grad_()
    value = DiceLoss(ignore_index=255, include_background=False)(ours_logits, target)
    theirs = monai_losses.DiceLoss(to_onehot_y=True, softmax=True, ignore_index=255,
                                   include_background=False)
    expected = theirs(theirs_logits, target.unsqueeze(1))
    torch.testing.assert_close(value, expected.to(value), atol=TOL, rtol=0)
    value.backward()
    expected.backward()
    torch.testing.assert_close(ours_logits.grad, theirs_logits.grad, atol=TOL, rtol=0)


class _nullcm:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
