"""Resolve the resource URIs of robot and world descriptions to files.

URDF meshes and SDF ``<uri>`` elements name files as ``file:///abs/path`` (what
moveit_resources_panda_description's xacro produces with ``$(find …)``), ``package://pkg/rel``
(ROS convention, resolved through the ament index like ``ament_index_python``'s
``get_package_share_directory``) or ``model://name/rel`` (Gazebo: searched in
``GZ_SIM_RESOURCE_PATH``). Used by the bring-up tests to prove every reference resolves.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse


def resolve_uri(uri: str, base: Path | None = None) -> Path:
    """The file ``uri`` points to.

    Args:
        uri: ``file://``, ``package://``, ``model://`` URI, or a plain path (relative paths are
            taken relative to ``base``).
        base: directory of the referring file, for relative paths.

    Returns:
        The existing file's path.

    Raises:
        FileNotFoundError: the URI resolves to no existing file (the message says where it
            looked).
        ValueError: an unsupported scheme.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.netloc + parsed.path))
        candidates = [path]
    elif parsed.scheme == "package":
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            share = Path(get_package_share_directory(parsed.netloc))
        except PackageNotFoundError:
            raise FileNotFoundError(f"{uri}: package {parsed.netloc!r} is not in the ament "
                                    "index (AMENT_PREFIX_PATH)") from None
        candidates = [share / parsed.path.lstrip("/")]
    elif parsed.scheme == "model":
        roots = [Path(p) for p in os.environ.get("GZ_SIM_RESOURCE_PATH", "").split(":") if p]
        candidates = [root / parsed.netloc / parsed.path.lstrip("/") for root in roots]
    elif parsed.scheme == "":
        path = Path(uri)
        candidates = [path if path.is_absolute() or base is None else base / path]
    else:
        raise ValueError(f"uri: expected a file://, package:// or model:// URI, got {uri!r}")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{uri}: no such file (looked at {[str(c) for c in candidates]})")
