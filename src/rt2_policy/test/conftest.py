"""Shared fixtures of the rt2_policy tests: an offline tiny VLA built once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Before anything imports torch: passive OMP waiting (2-thread forwards otherwise stall at
# random) and no Hub access.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

_PKG_ROOT = Path(__file__).resolve().parents[1]
try:
    import rt2_policy  # noqa: F401
except ImportError:  # running from the source tree without a colcon install
    sys.path.insert(0, str(_PKG_ROOT))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_vla_dir(tmp_path_factory) -> Path:
    """Directory of the tiny VLA (seed 0, 96 px, integer tokens), built once per session."""
    import torch

    torch.set_num_threads(2)
    from rt2_policy.tiny_model import build_tiny_vla

    return build_tiny_vla(tmp_path_factory.mktemp("tiny_vla"), seed=0)


@pytest.fixture(scope="session")
def tiny_vla_parts(tiny_vla_dir):
    """``(model, processor)`` loaded with the Auto classes; treat as read-only."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_vla_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_vla_dir)
    return model, processor


@pytest.fixture(scope="session")
def tiny_vla_policy(tiny_vla_dir):
    """A :class:`VLAPolicy` on the tiny VLA; treat as read-only."""
    from rt2_policy.vla_policy import VLAPolicy

    return VLAPolicy.from_pretrained(tiny_vla_dir)
