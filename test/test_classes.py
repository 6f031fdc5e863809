"""Class list, remapping and shipped-file lookup."""

import numpy as np
import pytest

from dice_seg_ros.classes import classes_for_model, load_classes, load_remap, remap_lut
from dice_seg_ros.resources import DEFAULT_CLASSES, resource_path


def test_shipped_classes_load_in_id_order():
    classes = load_classes()
    assert classes.num_classes == len(classes.names) == classes.colors.shape[0]
    assert classes.names[classes.index("trail")] == "trail"
    assert classes.drivable[classes.index("trail")]
    assert not classes.drivable[classes.index("obstacle")]
    assert classes.ignore_index == 255
    assert len({tuple(c) for c in classes.colors}) == classes.num_classes


def test_palette_maps_ids_to_colours_and_unknown_to_black():
    classes = load_classes()
    lut = classes.palette()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    np.testing.assert_array_equal(lut[: classes.num_classes], classes.colors)
    assert not lut[classes.num_classes:].any()


def test_unknown_class_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown class 'lava'.*trail"):
        load_classes().index("lava")


@pytest.mark.parametrize("body, message", [
    ("classes: []", "empty"),
    ("classes:\n  - {id: 1, name: a, color: [0, 0, 0]}", "ids must be 0..C-1"),
    ("classes:\n  - {id: 0, name: a, color: [0, 0]}", "color must be"),
    ("classes:\n  - {id: 0, name: a, color: [0, 0, 300]}", "color must be"),
    ("classes:\n  - {id: 0, name: a, color: [0, 0, 0]}\n"
     "  - {id: 1, name: a, color: [1, 1, 1]}", "names repeat"),
    ("ignore_index: 0\nclasses:\n  - {id: 0, name: a, color: [0, 0, 0]}", "collides"),
    ("ignore_index: 300\nclasses:\n  - {id: 0, name: a, color: [0, 0, 0]}", "8-bit"),
    ("classes:\n  - {id: 0, color: [0, 0, 0]}", "mapping with id, name"),
    ("classes:\n  - sky", "mapping with id, name"),
    ("just a string", "expected a mapping"),
])
def test_bad_classes_file_names_file_and_problem(tmp_path, body, message):
    path = tmp_path / "classes.yaml"
    path.write_text(body)
    with pytest.raises(ValueError, match=message) as info:
        load_classes(path)
    assert str(path) in str(info.value)


def test_missing_classes_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_classes(tmp_path / "nope.yaml")


def test_remap_lut_applies_mapping_and_ignores_the_rest(tmp_path):
    path = tmp_path / "remap.yaml"
    path.write_text("remap:\n  3: 1\n  7: 2\n")
    lut = remap_lut(load_remap(path))
    labels = np.array([[3, 7, 9]], dtype=np.uint8)
    np.testing.assert_array_equal(lut[labels], [[1, 2, 255]])


def test_remap_rejects_non_ids(tmp_path):
    path = tmp_path / "remap.yaml"
    path.write_text("remap:\n  3: 400\n")
    with pytest.raises(ValueError, match="3"):
        load_remap(path)


def test_resource_path_finds_shipped_file_and_lists_search_on_miss():
    assert resource_path(DEFAULT_CLASSES).is_file()
    with pytest.raises(FileNotFoundError, match="searched"):
        resource_path("config/does_not_exist.yaml")


def test_model_costs_replace_the_classes_costs_where_given():
    shipped = load_classes()
    costs = [None] * shipped.num_classes
    costs[shipped.index("grass")] = 60
    table = classes_for_model(shipped.names, costs=costs).cost_table()
    expected = shipped.cost_table().copy()
    expected[shipped.index("grass")] = 60
    np.testing.assert_array_equal(table, expected)
    assert classes_for_model(shipped.names).cost_table().tolist() == shipped.cost_table().tolist()
    with pytest.raises(ValueError, match="2 costs"):
        classes_for_model(shipped.names, costs=[1, 2])
