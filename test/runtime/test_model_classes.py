"""The model's class list drives masks and colours; classes_file only adds colours."""

import numpy as np
import pytest

from dice_seg_ros.classes import classes_for_model, load_classes
from dice_seg_ros.errors import ModelError

FIVE = ("road", "grass", "tree", "sky", "rock")


def five_class_file(tmp_path, names=FIVE):
    lines = ["classes:"] + [f"  - {{id: {i}, name: {n}, color: [{10 * i}, 20, 30]}}"
                            for i, n in enumerate(names)]
    path = tmp_path / "five.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_five_class_model_with_matching_file_uses_its_colours(tmp_path):
    classes = classes_for_model(FIVE, five_class_file(tmp_path))
    assert classes.names == FIVE
    np.testing.assert_array_equal(classes.colors[:, 0], [0, 10, 20, 30, 40])


def test_file_with_other_classes_is_refused_naming_both(tmp_path):
    path = five_class_file(tmp_path, names=("a", "b", "c", "d", "e"))
    with pytest.raises(ModelError, match="five.yaml.*'a'.*model has 5 classes.*'road'"):
        classes_for_model(FIVE, path)


def test_no_file_uses_shipped_colours_when_names_match():
    shipped = load_classes()
    assert classes_for_model(shipped.names) is not None
    np.testing.assert_array_equal(classes_for_model(shipped.names).colors, shipped.colors)


def test_no_file_and_other_names_gets_distinct_generated_colours():
    classes = classes_for_model(FIVE)
    assert classes.names == FIVE and classes.colors.shape == (5, 3)
    assert len({tuple(c) for c in classes.colors}) == 5
