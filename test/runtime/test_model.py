"""TerrainNet shapes and size, checkpoints round trip, and bad checkpoint files."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from dice_seg_ros.classes import load_classes  # noqa: E402
from dice_seg_ros.errors import ModelError  # noqa: E402
from dice_seg_ros.runtime.model import (build_model, default_meta, load_checkpoint,  # noqa: E402
                                        save_checkpoint)
from dice_seg_ros.runtime.model_meta import ModelMeta  # noqa: E402

torch.set_num_threads(1)
NAMES = load_classes().names


@pytest.fixture()
def small_meta() -> ModelMeta:
    return default_meta(NAMES, 64, 48, widths=[8, 8, 16, 16], decoder=8)


@pytest.mark.parametrize("size", [(64, 48), (100, 70), (33, 17)])
def test_logits_have_input_size_and_class_count(small_meta, size):
    model = build_model(small_meta).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, size[1], size[0]))
    assert out.shape == (2, len(NAMES), size[1], size[0])
    assert torch.isfinite(out).all()


def test_default_network_is_compact():
    model = build_model(default_meta(NAMES))
    params = sum(p.numel() for p in model.parameters())
    assert 50_000 < params < 1_000_000


def test_checkpoint_round_trip(tmp_path, small_meta):
    model = build_model(small_meta)
    path = save_checkpoint(tmp_path / "m.pt", model, small_meta, epoch=3)
    loaded, meta = load_checkpoint(path, class_names=NAMES)
    assert meta == small_meta
    assert not loaded.training
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))


def test_missing_and_corrupt_checkpoints_name_the_file(tmp_path):
    with pytest.raises(ModelError, match="checkpoint not found: .*absent.pt"):
        load_checkpoint(tmp_path / "absent.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ModelError, match="bad.pt: not a readable torch checkpoint"):
        load_checkpoint(bad)
    torch.save({"weights": {}}, tmp_path / "nometa.pt")
    with pytest.raises(ModelError, match="nometa.pt: checkpoint lacks"):
        load_checkpoint(tmp_path / "nometa.pt")


def test_class_mismatch_and_wrong_weights(tmp_path, small_meta):
    path = save_checkpoint(tmp_path / "m.pt", build_model(small_meta), small_meta)
    with pytest.raises(ModelError, match="m.pt: model has 6 classes .* lists 5"):
        load_checkpoint(path, class_names=NAMES[:5])
    other = default_meta(NAMES, 64, 48, widths=[8, 8, 16, 32], decoder=8)
    torch.save({"model": build_model(other).state_dict(), "meta": vars(small_meta)},
               tmp_path / "wrong.pt")
    with pytest.raises(ModelError, match="wrong.pt: weights do not fit"):
        load_checkpoint(tmp_path / "wrong.pt")


def test_unknown_architecture_is_rejected(small_meta):
    meta = ModelMeta(**{**vars(small_meta), "arch": "resnet_9000"})
    with pytest.raises(ModelError, match="unknown model architecture 'resnet_9000'"):
        build_model(meta)
    meta = ModelMeta(**{**vars(small_meta), "arch_kwargs": {"depth": 3}})
    with pytest.raises(ModelError, match="bad arguments"):
        build_model(meta)
