"""Labels of another ontology: remapped ids, colour maps, and one place checking the format."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import image_msg

from dice_seg_ros.bags.evaluate import EvalOptions, evaluate_bag
from dice_seg_ros.bags.label_decoding import LabelDecoder, load_colormap
from dice_seg_ros.bags.synthetic_bag import IMAGE_TOPIC, LABEL_TOPIC, write_synthetic_bag
from dice_seg_ros.classes import load_classes
from dice_seg_ros.runtime.frame_errors import FrameErrors

CLASSES = load_classes()


def test_remapped_ids(tmp_path):
    remap = tmp_path / "remap.yaml"
    remap.write_text("remap:\n  10: 1\n  20: 3\n  30: 255\n")
    decode = LabelDecoder.build(CLASSES, "ids", remap=remap)
    ids = decode(image_msg(np.array([[10, 20], [30, 99]], np.uint8), 0, "mono8"))
    np.testing.assert_array_equal(ids, [[1, 3], [255, 255]])  # 99 unlisted -> ignore


def test_remap_onto_unknown_class_is_refused(tmp_path):
    remap = tmp_path / "remap.yaml"
    remap.write_text("4: 9\n")
    with pytest.raises(ValueError, match=r"remap.yaml maps onto ids \[9\]"):
        LabelDecoder.build(CLASSES, "ids", remap=remap)


def test_colormap_with_remap(tmp_path):
    colormap = tmp_path / "rugd.csv"
    colormap.write_text("id,name,r,g,b\n0,void,0,0,0\n3,grass,0,102,0\n7,gravel,255,128,0\n")
    remap = tmp_path / "remap.yaml"
    remap.write_text("3: 1\n7: 2\n")
    decode = LabelDecoder.build(CLASSES, "color", remap=remap, colormap=colormap)
    rgb = np.array([[[0, 102, 0], [255, 128, 0], [0, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(decode(image_msg(rgb, 0)), [[1, 2, 255]])
    with pytest.raises(ValueError, match="not in the class list"):
        decode(image_msg(np.array([[[1, 2, 3]]], np.uint8), 0))


def test_colormap_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name,r,g,b\n0,void,0,0,300\n")
    with pytest.raises(ValueError, match="bad.csv line 2"):
        load_colormap(bad)
    bad.write_text("id;name\n")
    with pytest.raises(ValueError, match="header line id,name,r,g,b"):
        load_colormap(bad)
    with pytest.raises(ValueError, match="needs label format 'color'"):
        LabelDecoder.build(CLASSES, "ids", colormap=bad)
    with pytest.raises(ValueError, match="label_format must be one of ids, color"):
        LabelDecoder.build(CLASSES, "rgb")


def test_eval_with_remap_matches_native_ids(tmp_path, tiny_segmenter):
    bag = write_synthetic_bag(tmp_path / "bag", 2, 32, 24, progress=False)
    native = evaluate_bag(bag, IMAGE_TOPIC, LABEL_TOPIC, tmp_path / "a", tiny_segmenter,
                          options=EvalOptions(output_bag=False, progress=False)).report
    # An identity remap must give the same scores as no remap at all.
    remap = tmp_path / "identity.yaml"
    remap.write_text("".join(f"{i}: {i}\n" for i in range(CLASSES.num_classes)))
    mapped = evaluate_bag(bag, IMAGE_TOPIC, LABEL_TOPIC, tmp_path / "b", tiny_segmenter,
                          EvalOptions(output_bag=False, progress=False, remap=remap)).report
    assert mapped["dice"] == native["dice"] and mapped["remap"] == str(remap)


def test_frame_errors_count_and_keep_first_stamps():
    errors = FrameErrors()
    for stamp in range(8):
        with pytest.raises(ValueError):
            with errors.step("label_decode", stamp):
                raise ValueError(f"bad {stamp}")
    errors.add("message", None, "junk")
    assert errors.total == 9
    assert errors.as_dict()["label_decode"] == {
        "count": 8, "first_stamps_ns": [0, 1, 2, 3, 4], "first_message": "bad 0"}
    assert errors.as_dict()["message"]["first_stamps_ns"] == []
