"""``sensor_msgs/Image`` → RGB numpy array, via cv_bridge where installed, numpy otherwise.

Accepted encodings (``sensor_msgs/image_encodings``): ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``,
``mono8``. Anything else raises ``ValueError`` so the node can stop the arm with a clear log line
instead of feeding the policy garbage. The message is duck-typed (``height``, ``width``,
``encoding``, ``is_bigendian``, ``step``, ``data``) so this module does not import ROS.
"""

from __future__ import annotations

import numpy as np

try:  # Optional: ROS 2's cv_bridge (apt). Not installable from PyPI.
    from cv_bridge import CvBridge  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the machine
    CvBridge = None

#: Channels per pixel of each supported 8-bit encoding.
SUPPORTED_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}

_bridge = None


def _numpy_to_rgb(msg) -> np.ndarray:
    encoding = msg.encoding.lower()
    channels = SUPPORTED_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ValueError(f"image: expected a non-empty frame, got {width}x{height}")
    if step < width * channels:
        raise ValueError(f"image: expected step >= {width * channels} for {width} px of "
                         f"{encoding}, got {step}")
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, (bytes, bytearray,
                         memoryview, np.ndarray)) else msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise ValueError(f"image: expected {step * height} bytes (step {step} x height {height}), "
                         f"got {data.size}")
    rows = data.reshape(height, step)[:, : width * channels]
    pixels = rows.reshape(height, width, channels)
    if encoding == "rgb8":
        rgb = pixels
    elif encoding == "bgr8":
        rgb = pixels[:, :, ::-1]
    elif encoding == "rgba8":
        rgb = pixels[:, :, :3]
    elif encoding == "bgra8":
        rgb = pixels[:, :, 2::-1]
    else:  # mono8
        rgb = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(rgb)


def image_msg_to_rgb(msg, use_cv_bridge: bool = True) -> np.ndarray:
    """Convert a ``sensor_msgs/Image`` to an RGB array.

    Args:
        msg: a ``sensor_msgs/msg/Image`` (or any object with the same fields).
        use_cv_bridge: use ROS 2's cv_bridge when it is importable.

    Returns:
        ``(height, width, 3)`` ``uint8`` array, channel order R, G, B, C-contiguous.

    Raises:
        ValueError: unsupported encoding, empty frame, or a size that does not match
            ``step * height``.
    """
    encoding = (msg.encoding or "").lower()
    if encoding not in SUPPORTED_ENCODINGS:
        raise ValueError(f"image: expected encoding one of {sorted(SUPPORTED_ENCODINGS)}, "
                         f"got {msg.encoding!r}")
    if use_cv_bridge and CvBridge is not None:
        global _bridge
        if _bridge is None:
            _bridge = CvBridge()
        try:
            rgb = _bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
        except Exception as exc:  # cv_bridge raises CvBridgeError or cv2.error
            raise ValueError(f"image: cv_bridge could not convert the frame: {exc}") from exc
        return np.ascontiguousarray(rgb, dtype=np.uint8)
    return _numpy_to_rgb(msg)


def rgb_to_image_fields(rgb: np.ndarray) -> dict:
    """Fields of an ``rgb8`` ``sensor_msgs/Image`` for an ``(H, W, 3)`` ``uint8`` array.

    Returns a dict with ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``.

    Raises:
        ValueError: on a wrong shape or dtype.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb: expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w, _ = rgb.shape
    return {"height": h, "width": w, "encoding": "rgb8", "is_bigendian": 0, "step": w * 3,
            "data": np.ascontiguousarray(rgb).tobytes()}
