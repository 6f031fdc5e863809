"""Model metadata round trip and validation."""

import pytest

from dice_seg_ros.errors import ModelError
from dice_seg_ros.runtime.model_meta import ModelMeta

META = ModelMeta(input_width=320, input_height=240, mean=(0.5, 0.5, 0.5),
                 std=(0.25, 0.25, 0.25), class_names=("sky", "trail"), arch="net",
                 arch_kwargs={"width": 16})


def test_json_round_trip_preserves_every_field():
    assert ModelMeta.from_json(META.to_json()) == META
    assert META.num_classes == 2


def test_missing_key_names_source():
    with pytest.raises(ModelError, match="m.onnx.*input_width"):
        ModelMeta.from_dict({"input_height": 1}, source="m.onnx")


def test_bad_json_names_source():
    with pytest.raises(ModelError, match="m.onnx"):
        ModelMeta.from_json("{not json", source="m.onnx")


def test_class_mismatch_names_both_lists():
    META.check_classes(("sky", "trail"), "m.onnx")
    with pytest.raises(ModelError, match="2 classes.*lists 3"):
        META.check_classes(("sky", "trail", "water"), "m.onnx")
