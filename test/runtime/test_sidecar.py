"""A network exported elsewhere, without this project's metadata, runs given a sidecar YAML."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from dice_seg_ros.bags.synthetic_bag import IMAGE_TOPIC, LABEL_TOPIC  # noqa: E402
from dice_seg_ros.classes import classes_for_model, load_classes  # noqa: E402
from dice_seg_ros.cli import main  # noqa: E402
from dice_seg_ros.errors import ModelError  # noqa: E402
from dice_seg_ros.runtime.inference import Segmenter  # noqa: E402
from dice_seg_ros.runtime.model_meta import sidecar_path  # noqa: E402

NAMES = load_classes().names
MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
RNG = np.random.default_rng(3)


class ArgmaxNet(torch.nn.Module):
    """A 1x1 conv whose class ids (N, 1, H, W) int64 leave the graph, as some tools export."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).argmax(dim=1, keepdim=True)


def _conv(classes: int) -> torch.nn.Module:
    torch.manual_seed(classes)
    return torch.nn.Conv2d(3, classes, 1).eval()


def _export(module: torch.nn.Module, path, size=(64, 48), dynamic=False):
    """Export ``module`` the way another project would: plain torch.onnx, no metadata."""
    import warnings

    dummy = torch.zeros(1, 3, size[1], size[0])
    axes = {"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h", 3: "w"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, (dummy,), str(path), input_names=["input"],
                          output_names=["output"], dynamic_axes=axes if dynamic else None,
                          opset_version=17, dynamo=False)
    return path


def _sidecar(model, **fields):
    doc = {"mean": MEAN, "std": STD, "output": "logits",
           "classes": [{"name": n, "color": [i, 2 * i, 3 * i]} for i, n in enumerate(NAMES)]}
    doc.update(fields)
    doc = {k: v for k, v in doc.items() if v is not None}
    sidecar_path(model).write_text(yaml.safe_dump(doc))
    return model


def _expected(net: torch.nn.Module, image: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Class ids the network gives on ``image`` normalised as the sidecar says (no resize)."""
    pixels = image[..., ::-1] if bgr else image
    x = (pixels / 255.0 - np.array(MEAN)) / np.array(STD)
    with torch.no_grad():
        logits = net(torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32)))
    return logits.argmax(dim=1)[0].numpy()


@pytest.fixture(scope="module")
def fixed_model(tmp_path_factory):
    return _export(_conv(len(NAMES)), tmp_path_factory.mktemp("m") / "net.onnx")


def test_without_metadata_or_sidecar_the_error_names_the_sidecar(fixed_model):
    sidecar_path(fixed_model).unlink(missing_ok=True)
    with pytest.raises(ModelError, match=r"net\.onnx\.yaml"):
        Segmenter(fixed_model, device="cpu")


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_logits_model_runs_with_sidecar_normalisation_and_colour_order(fixed_model, order):
    _sidecar(fixed_model, color_order=order)
    segmenter = Segmenter(fixed_model, device="cpu", threads=1)
    assert segmenter.input_size == (64, 48) and segmenter.meta.class_names == NAMES
    assert segmenter.sidecar.class_colors[2] == (2, 4, 6)
    image = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    result = segmenter.segment(image, with_confidence=True)
    expected = _expected(_conv(len(NAMES)), image, bgr=order == "bgr")
    np.testing.assert_array_equal(result.class_ids, expected)
    assert result.confidence.shape == (48, 64)


@pytest.mark.parametrize("field", ["mean", "std", "output", "classes"])
def test_missing_field_is_named(fixed_model, field):
    _sidecar(fixed_model, **{field: None})
    with pytest.raises(ModelError, match=rf"net\.onnx\.yaml.*{field!r}"):
        Segmenter(fixed_model, device="cpu")


@pytest.mark.parametrize("fields, message", [
    ({"output": "class_ids"}, "says output 'class_ids'"),
    ({"output": "probabilities"}, "output 'probabilities'"),
    ({"input_size": [32, 32]}, "differs from the graph's fixed 64x48"),
    ({"color_order": "hsv"}, "color_order"),
    ({"classes": [{"name": "sky"}]}, r"'classes\[0\]\.color' is missing"),
])
def test_invalid_fields_are_named(fixed_model, fields, message):
    _sidecar(fixed_model, **fields)
    with pytest.raises(ModelError, match=message):
        Segmenter(fixed_model, device="cpu")


def test_dynamic_graph_needs_a_size_and_dynamic_runs_at_each_images_size(tmp_path):
    net = _conv(len(NAMES))
    model = _export(net, tmp_path / "dyn.onnx", dynamic=True)
    _sidecar(model)
    with pytest.raises(ModelError, match="'input_size' is missing"):
        Segmenter(model, device="cpu")
    _sidecar(model, input_size="dynamic")
    segmenter = Segmenter(model, device="cpu", threads=1)
    assert segmenter.input_size is None
    images = [RNG.integers(0, 256, shape, dtype=np.uint8) for shape in
              [(30, 40, 3), (17, 23, 3), (30, 40, 3)]]
    for image, result in zip(images, segmenter.segment_batch(images)):
        np.testing.assert_array_equal(result.class_ids, _expected(net, image))
    _sidecar(model, input_size=[20, 10])
    assert Segmenter(model, device="cpu").input_size == (20, 10)


def test_class_id_output_remapped_onto_the_node_classes(tmp_path):
    net = _conv(3)
    model = _export(ArgmaxNet(net), tmp_path / "ids.onnx")
    theirs = [{"name": n, "color": [0, 0, 0]} for n in ("road", "vegetation", "sky_")]
    remap = {"road": "trail", "vegetation": "grass", "sky_": "sky"}
    _sidecar(model, output="class_ids", classes=theirs, remap=remap)
    segmenter = Segmenter(model, device="cpu", threads=1)
    assert segmenter.meta.class_names == NAMES and segmenter.io.ids_output
    # 2x2 blocks: halving to the 64x48 network size is exact, and so is the
    # nearest-neighbour resize back, so every pixel's id is known.
    network_image = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    image = np.repeat(np.repeat(network_image, 2, axis=0), 2, axis=1)
    ids = segmenter.segment(image).class_ids
    lut = np.array([NAMES.index(remap[c["name"]]) for c in theirs])
    assert ids.shape == (96, 128)
    np.testing.assert_array_equal(ids[::2, ::2], lut[_expected(net, network_image)])
    assert len(np.unique(ids)) == 3
    _sidecar(model, output="class_ids", classes=theirs, remap={"road": "trail"})
    with pytest.raises(ModelError, match=r"\['vegetation', 'sky_'\]"):
        Segmenter(model, device="cpu")
    _sidecar(model, output="class_ids", classes=theirs, remap={**remap, "road": "asphalt"})
    with pytest.raises(ModelError, match="'asphalt'.*node's classes"):
        Segmenter(model, device="cpu")


def test_sidecar_costs_reach_the_class_set_unless_remapped(tmp_path):
    model = _export(_conv(3), tmp_path / "own.onnx")
    theirs = [{"name": "road", "color": [0, 0, 0], "cost": 10},
              {"name": "rock", "color": [1, 1, 1], "cost": 100},
              {"name": "fog", "color": [2, 2, 2]}]
    _sidecar(model, classes=theirs)
    segmenter = Segmenter(model, device="cpu", threads=1)
    assert segmenter.class_costs == (10, 100, None)
    classes = classes_for_model(segmenter.meta.class_names, costs=segmenter.class_costs)
    assert classes.cost_table().tolist() == [10, 100, -1]
    # Remapped onto the node's classes, the node's classes file gives the costs.
    _sidecar(model, classes=theirs, remap={"road": "trail", "rock": "obstacle", "fog": "sky"})
    assert Segmenter(model, device="cpu", threads=1).class_costs == ()
    _sidecar(model, classes=[dict(theirs[0], cost=101)] + theirs[1:])
    with pytest.raises(ModelError, match=r"classes\[0\]\.cost 101"):
        Segmenter(model, device="cpu")


def test_eval_runs_a_sidecar_model(fixed_model, small_bag, tmp_path, capsys):
    _sidecar(fixed_model)
    code = main(["eval", "--bag", str(small_bag), "--image-topic", IMAGE_TOPIC,
                 "--label-topic", LABEL_TOPIC, "--model", str(fixed_model),
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    report = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert report["model"] == str(fixed_model)
