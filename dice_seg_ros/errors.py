"""Exception types whose messages name the file, topic, encoding or value at fault."""


class DiceSegError(Exception):
    """Base class for errors raised by dice_seg_ros on bad input."""


class ImageEncodingError(DiceSegError, ValueError):
    """An image message has an unknown encoding or an inconsistent size."""


class BagError(DiceSegError):
    """A rosbag is missing, corrupt, or lacks the requested topic or type."""


class ModelError(DiceSegError):
    """A model file is missing, corrupt, or does not match the class list."""
