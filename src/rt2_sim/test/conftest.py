"""Shared pytest setup for rt2_sim: offscreen rendering backend and an importable package."""

import os
import pathlib
import sys

# Offscreen OpenGL on CPU (Mesa EGL); must be set before mujoco is imported. osmesa also works.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

# Allow running the tests from a source checkout without installing the package.
_PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[1]
try:
    import rt2_sim  # noqa: F401
except ImportError:
    sys.path.insert(0, str(_PACKAGE_ROOT))
