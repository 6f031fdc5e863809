import array

import cv2
import numpy as np
import pytest

from conftest import TS

from dice_seg_ros.classes import load_classes
from dice_seg_ros.errors import ImageEncodingError
from dice_seg_ros.runtime.image_conversion import (color_to_ids, colorize, compressed_to_rgb,
                                                   image_to_numpy, image_to_rgb, labels_to_ids,
                                                   msg_to_rgb, numpy_to_compressed, numpy_to_image,
                                                   overlay)

Image = TS.types["sensor_msgs/msg/Image"]
CompressedImage = TS.types["sensor_msgs/msg/CompressedImage"]
Header = TS.types["std_msgs/msg/Header"]
Time = TS.types["builtin_interfaces/msg/Time"]


def fake_rclpy_type(name, fields):
    """Build a class shaped like an rclpy message: no keyword ctor, typed uint8[] setter."""

    def __init__(self):
        for field in fields:
            setattr(self, field, None)
        self._data = array.array("B")

    def get_data(self):
        return self._data

    def set_data(self, value):
        if isinstance(value, array.array):
            assert value.typecode == "B"
            self._data = value
            return
        assert all(isinstance(v, int) and 0 <= v < 256 for v in value)
        self._data = array.array("B", value)

    namespace = {
        "__init__": __init__,
        "_fields_and_field_types": {f: "x" for f in (*fields, "data")},
        "get_fields_and_field_types": classmethod(lambda cls: dict(cls._fields_and_field_types)),
        "data": property(get_data, set_data),
    }
    return type(name, (), namespace)


FakeImage = fake_rclpy_type(
    "Image", ["header", "height", "width", "encoding", "is_bigendian", "step"])
FakeCompressed = fake_rclpy_type("CompressedImage", ["header", "format"])


@pytest.fixture
def header():
    return Header(stamp=Time(sec=12, nanosec=345), frame_id="camera")


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)


def make_image(pixels, encoding, pad=0, data_kind="numpy", bigendian=False, header=None):
    """Serialise ``pixels`` by hand into an Image with ``pad`` bytes after each row."""
    pixels = np.asarray(pixels)
    if bigendian:
        pixels = pixels.astype(pixels.dtype.newbyteorder(">"))
    height, width = pixels.shape[:2]
    row = pixels.reshape(height, -1).view(np.uint8).reshape(height, -1)
    padded = np.zeros((height, row.shape[1] + pad), np.uint8)
    padded[:, : row.shape[1]] = row
    flat = padded.reshape(-1)
    data = {"numpy": flat, "bytes": flat.tobytes(), "bytearray": bytearray(flat.tobytes()),
            "array": array.array("B", flat.tobytes()), "list": flat.tolist()}[data_kind]
    return Image(header=header or Header(stamp=Time(sec=0, nanosec=0), frame_id=""),
                 height=height, width=width, encoding=encoding, is_bigendian=int(bigendian),
                 step=padded.shape[1], data=data)


@pytest.mark.parametrize("data_kind", ["numpy", "bytes", "bytearray", "array", "list"])
def test_rgb8_with_padding_all_data_kinds(rgb, data_kind):
    msg = make_image(rgb, "rgb8", pad=5, data_kind=data_kind)
    np.testing.assert_array_equal(image_to_numpy(msg), rgb)
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


@pytest.mark.parametrize("data_kind", ["numpy", "bytearray", "array"])
def test_rgb8_padded_is_zero_copy(rgb, data_kind):
    msg = make_image(rgb, "rgb8", pad=8, data_kind=data_kind)
    out = image_to_rgb(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    assert out.strides[0] == msg.step


def test_bytes_view_is_read_only(rgb):
    out = image_to_numpy(make_image(rgb, "rgb8", data_kind="bytes"))
    assert not out.flags.writeable


@pytest.mark.parametrize("encoding,convert", [
    ("bgr8", cv2.COLOR_RGB2BGR), ("rgba8", cv2.COLOR_RGB2RGBA), ("bgra8", cv2.COLOR_RGB2BGRA),
    ("8UC4", cv2.COLOR_RGB2RGBA)])
def test_colour_encodings_to_rgb(rgb, encoding, convert):
    msg = make_image(cv2.cvtColor(rgb, convert), encoding, pad=3)
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_8uc3_passes_channels_through(rgb):
    np.testing.assert_array_equal(image_to_rgb(make_image(rgb, "8UC3")), rgb)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_to_rgb(encoding):
    gray = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    out = image_to_rgb(make_image(gray, encoding, pad=1))
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_16bit_native_values_and_high_byte(encoding, bigendian):
    gray = np.array([[0, 255, 256, 40000], [65535, 1, 513, 30000]], np.uint16)
    msg = make_image(gray, encoding, pad=2, bigendian=bigendian)
    native = image_to_numpy(msg)
    assert native.dtype == np.dtype(np.uint16) and native.dtype.isnative
    np.testing.assert_array_equal(native, gray)
    np.testing.assert_array_equal(image_to_rgb(msg)[..., 1], gray >> 8)


def test_bigendian_does_not_modify_message():
    gray = np.array([[1, 2]], np.uint16)
    msg = make_image(gray, "16UC1", bigendian=True)
    before = bytes(msg.data)
    image_to_numpy(msg)
    assert bytes(msg.data) == before


def test_32fc1_scaling():
    values = np.array([[0.0, 0.5, 1.0, 2.0, -1.0, np.nan]], np.float32)
    msg = make_image(values, "32FC1", pad=4)
    np.testing.assert_array_equal(image_to_numpy(msg), values)
    np.testing.assert_array_equal(image_to_rgb(msg)[0, :, 0], [0, 128, 255, 255, 0, 0])


def mosaic(color, pattern, shape=(8, 10)):
    """Bayer mosaic of a constant colour; pattern names the 2x2 tile row-major, e.g. 'rggb'."""
    index = {"r": 0, "g": 1, "b": 2}
    out = np.zeros(shape, np.uint8)
    for k, letter in enumerate(pattern):
        out[k // 2::2, k % 2::2] = color[index[letter]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_demosaic_channel_order(pattern):
    color = (200, 120, 30)
    msg = make_image(mosaic(color, pattern), f"bayer_{pattern}8", pad=2)
    out = image_to_rgb(msg)
    np.testing.assert_array_equal(out[2:-2, 2:-2], np.broadcast_to(color, (4, 6, 3)))


@pytest.mark.parametrize("encoding,order", [
    ("yuv422", "UYVY"), ("uyvy", "UYVY"), ("yuv422_yuy2", "YUYV"), ("yuyv", "YUYV")])
def test_yuv422_byte_order(encoding, order):
    # BT.601 video range for RGB (200, 60, 30): Y 101, U 94, V 192.
    byte = {"Y": 101, "U": 94, "V": 192}
    tile = [byte[ch] for ch in order]
    packed = np.tile(np.array(tile, np.uint8), (4, 3)).reshape(4, 6, 2)
    out = image_to_rgb(make_image(packed, encoding, pad=4))
    assert out.shape == (4, 6, 3)
    assert np.abs(out.astype(int) - (200, 60, 30)).max() <= 2


@pytest.mark.parametrize("field,value,match", [
    ("encoding", "rgb16", "rgb16"),
    ("step", 20, "step 20"),
    ("height", 0, "zero size"),
    ("width", 0, "zero size"),
    ("data", np.zeros(10, np.uint8), "10 bytes"),
])
def test_bad_images_raise(rgb, field, value, match):
    msg = make_image(rgb, "rgb8")
    setattr(msg, field, value)
    with pytest.raises(ImageEncodingError, match=match):
        image_to_rgb(msg)


def test_odd_width_yuv422_raises():
    with pytest.raises(ImageEncodingError, match="yuv422 image 3x4"):
        image_to_rgb(make_image(np.zeros((4, 3, 2), np.uint8), "yuv422"))


def test_read_only_padded_view_feeds_opencv(rgb):
    view = image_to_rgb(make_image(rgb, "rgb8", pad=5, data_kind="bytes"))
    np.testing.assert_array_equal(overlay(view, view, 0.5), rgb)
    assert cv2.resize(view, (3, 2)).shape == (2, 3, 3)


ROUND_TRIP = [
    ("mono8", np.uint8, ()), ("8UC1", np.uint8, ()), ("16UC1", np.uint16, ()),
    ("mono16", np.uint16, ()), ("32FC1", np.float32, ()), ("rgb8", np.uint8, (3,)),
    ("bgr8", np.uint8, (3,)), ("rgba8", np.uint8, (4,)), ("8UC3", np.uint8, (3,)),
]


@pytest.mark.parametrize("msg_type", [Image, FakeImage], ids=["rosbags", "rclpy-like"])
@pytest.mark.parametrize("encoding,dtype,extra", ROUND_TRIP)
def test_numpy_to_image_round_trip(header, msg_type, encoding, dtype, extra):
    rng = np.random.default_rng(1)
    pixels = (rng.random((5, 9, *extra)) * 250).astype(dtype)
    msg = numpy_to_image(pixels, encoding, header, msg_type)
    assert isinstance(msg, msg_type) and msg.header is header
    assert (msg.height, msg.width, msg.encoding, msg.is_bigendian) == (5, 9, encoding, 0)
    assert msg.step == 9 * int(np.prod(extra, dtype=int)) * np.dtype(dtype).itemsize
    np.testing.assert_array_equal(image_to_numpy(msg), pixels)


def test_rclpy_like_data_is_array_array(header):
    msg = numpy_to_image(np.zeros((2, 3), np.uint8), "mono8", header, FakeImage)
    assert isinstance(msg.data, array.array) and len(msg.data) == 6


def test_numpy_to_image_through_cdr(header, rgb):
    msg = numpy_to_image(rgb[::-1], "rgb8", header, Image)  # non-contiguous input
    raw = TS.serialize_cdr(msg, msg.__msgtype__)
    back = TS.deserialize_cdr(raw, msg.__msgtype__)
    assert back.header.stamp.sec == 12 and back.header.frame_id == "camera"
    np.testing.assert_array_equal(image_to_rgb(back), rgb[::-1])


def test_numpy_to_image_writes_little_endian(header):
    big = np.array([[1, 258]], np.dtype(">u2"))
    msg = numpy_to_image(big, "16UC1", header, Image)
    assert msg.is_bigendian == 0 and bytes(msg.data) == b"\x01\x00\x02\x01"


@pytest.mark.parametrize("pixels,encoding,match", [
    (np.zeros((2, 2), np.uint16), "mono8", "uint8"),
    (np.zeros((2, 2, 3), np.uint8), "mono8", r"\(H, W\)"),
    (np.zeros((2, 2), np.float64), "32FC1", "float32"),
    (np.zeros((2, 2), np.uint8), "bayer_rggb8", "cannot write"),
    (np.zeros((0, 2), np.uint8), "mono8", "zero size"),
])
def test_numpy_to_image_rejects(header, pixels, encoding, match):
    with pytest.raises(ImageEncodingError, match=match):
        numpy_to_image(pixels, encoding, header, Image)


@pytest.mark.parametrize("msg_type", [CompressedImage, FakeCompressed])
def test_png_round_trip_exact(header, rgb, msg_type):
    msg = numpy_to_compressed(rgb, header, msg_type, fmt="png")
    assert msg.header is header and "png" in msg.format
    np.testing.assert_array_equal(msg_to_rgb(msg), rgb)


def test_jpeg_round_trip_close_and_cdr(header):
    smooth = np.zeros((32, 48, 3), np.uint8)
    smooth[..., 0] = 200
    smooth[..., 1] = np.linspace(0, 255, 48, dtype=np.uint8)
    smooth[..., 2] = 40
    msg = numpy_to_compressed(smooth, header, CompressedImage, fmt="jpeg")
    back = TS.deserialize_cdr(TS.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    decoded = compressed_to_rgb(back)
    assert decoded.shape == smooth.shape
    assert np.abs(decoded.astype(int) - smooth).mean() < 3


def test_plain_format_string_accepted(header, rgb):
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    msg = CompressedImage(header=header, format="png", data=png.reshape(-1))
    np.testing.assert_array_equal(compressed_to_rgb(msg), rgb)


@pytest.mark.parametrize("fmt,data,match", [
    ("jpeg", np.frombuffer(b"not a jpeg at all", np.uint8), "jpeg"),
    ("png", np.zeros(0, np.uint8), "png"),
    ("16UC1; compressedDepth png", np.zeros(4, np.uint8), "compressedDepth"),
    ("webp", np.zeros(4, np.uint8), "webp"),
])
def test_bad_compressed_raise(header, fmt, data, match):
    with pytest.raises(ImageEncodingError, match=match):
        compressed_to_rgb(CompressedImage(header=header, format=fmt, data=data))


def test_numpy_to_compressed_rejects_bad_format(header, rgb):
    with pytest.raises(ImageEncodingError, match="bmp"):
        numpy_to_compressed(rgb, header, CompressedImage, fmt="bmp")


def test_msg_to_rgb_rejects_other_objects():
    with pytest.raises(TypeError, match="int"):
        msg_to_rgb(3)


def test_colorize_uses_palette():
    classes = load_classes()
    ids = np.array([[0, 1, 2], [5, 255, 3]], np.uint8)
    out = colorize(ids, classes.palette())
    np.testing.assert_array_equal(out[0, 1], classes.colors[1])
    np.testing.assert_array_equal(out[1, 1], [0, 0, 0])
    np.testing.assert_array_equal(colorize(ids, classes.colors), out)  # short palette padded


def test_colorize_rejects():
    with pytest.raises(ValueError, match="uint8"):
        colorize(np.zeros((2, 2), np.int64), np.zeros((256, 3), np.uint8))
    with pytest.raises(ValueError, match="palette"):
        colorize(np.zeros((2, 2), np.uint8), np.zeros((256, 4), np.uint8))


def test_overlay_blend(rgb):
    mask = np.full_like(rgb, 100)
    out = overlay(rgb, mask, 0.25)
    want = 0.75 * rgb + 0.25 * mask
    assert out.dtype == np.uint8 and np.abs(out - want).max() <= 0.5 + 1e-9
    np.testing.assert_array_equal(overlay(rgb, mask, 0.0), rgb)
    np.testing.assert_array_equal(overlay(rgb, mask, 1.0), mask)


def test_overlay_rejects(rgb):
    with pytest.raises(ValueError, match="alpha"):
        overlay(rgb, rgb, 1.5)
    with pytest.raises(ValueError, match="one size"):
        overlay(rgb, rgb[:2], 0.5)


def test_color_to_ids_inverts_colorize():
    classes = load_classes()
    rng = np.random.default_rng(2)
    ids = rng.integers(0, classes.num_classes, (20, 30)).astype(np.uint8)
    color = colorize(ids, classes.palette())
    color[0, 0] = (1, 2, 3)  # not a class colour
    want = ids.copy()
    want[0, 0] = 255
    np.testing.assert_array_equal(color_to_ids(color, classes.colors), want)
    np.testing.assert_array_equal(color_to_ids(color[:, ::2], classes.colors), want[:, ::2])


def test_color_to_ids_rejects():
    image = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="repeat"):
        color_to_ids(image, np.array([[1, 2, 3], [1, 2, 3]]))
    with pytest.raises(ValueError, match="256"):
        color_to_ids(image, np.array([[1, 2, 256]]))
    with pytest.raises(ValueError, match="unknown"):
        color_to_ids(image, np.array([[1, 2, 3]]), unknown=300)
    with pytest.raises(ValueError, match="uint8"):
        color_to_ids(image.astype(np.int32), np.array([[1, 2, 3]]))


def test_labels_to_ids_formats(header):
    classes = load_classes()
    ids = np.array([[0, 1, 2], [3, 255, 5]], np.uint8)
    np.testing.assert_array_equal(
        labels_to_ids(numpy_to_image(ids, "mono8", header, Image), "ids", classes), ids)
    wide = numpy_to_image(ids.astype(np.uint16), "16UC1", header, Image)
    out = labels_to_ids(wide, "ids", classes)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, ids)
    ok, png = cv2.imencode(".png", ids)
    packed = CompressedImage(header=header, format="png", data=png.reshape(-1))
    np.testing.assert_array_equal(labels_to_ids(packed, "ids", classes), ids)
    color = numpy_to_image(colorize(ids, classes.palette()), "rgb8", header, Image)
    np.testing.assert_array_equal(labels_to_ids(color, "color", classes), ids)


def test_labels_to_ids_rejects(header):
    classes = load_classes()
    bad = np.array([[0, 9, 300]], np.uint16)
    with pytest.raises(ValueError, match=r"9, 300"):
        labels_to_ids(numpy_to_image(bad, "16UC1", header, Image), "ids", classes)
    with pytest.raises(ValueError, match="label_format"):
        labels_to_ids(numpy_to_image(bad, "16UC1", header, Image), "rgb", classes)
    with pytest.raises(ImageEncodingError, match="rgb8"):
        labels_to_ids(numpy_to_image(np.zeros((1, 1, 3), np.uint8), "rgb8", header, Image),
                      "ids", classes)


def test_color_labels_with_foreign_colours_are_rejected_black_is_void(header):
    classes = load_classes()
    rgb = colorize(np.array([[0, 1, 2, 3]], np.uint8), classes.palette())
    rgb[0, 3] = (0, 0, 0)
    ids = labels_to_ids(numpy_to_image(rgb, "rgb8", header, Image), "color", classes)
    np.testing.assert_array_equal(ids, [[0, 1, 2, classes.ignore_index]])
    rgb[0, 3] = (1, 2, 3)
    with pytest.raises(ValueError, match=r"\[1, 2, 3\]"):
        labels_to_ids(numpy_to_image(rgb, "rgb8", header, Image), "color", classes)
