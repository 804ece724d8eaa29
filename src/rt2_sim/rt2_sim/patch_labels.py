"""Per-patch labels of rendered task scenes, for dense pre-training of a VLA's vision tower.

A vision tower trained from scratch inside a tiny VLA never learns to find 4 cm objects (they
are ~5 px wide at 96 px; README "Train -> Status"), while a dense, local task teaches it in a
few hundred steps: which object colour (or the arm, or nothing) covers each patch of the image.
The labels come from MuJoCo's segmentation rendering of the same camera, so they are exact:
each geom's body is an object slot, a container or a link of the arm, and an object's colour
name is the palette entry nearest its geom colour.

Grid: ``grid x grid`` cells over the image (8 x 8: one cell per 12 px patch of a 96 px policy
image). A cell is labelled with the most frequent object colour when objects cover at least
``object_fraction`` of it, else ``"arm"`` when the arm covers at least ``arm_fraction``, else
``"background"`` (table, floor, walls).

Output (:func:`generate`): one ``.npz`` file with ``images`` ``(N, H, W, 3)`` uint8 (the scene
camera's RGB, as the policy sees it), ``labels`` ``(N, grid, grid)`` int64 (row 0 = top) and
``classes`` (the names of the label ids). Scenes are those of the VQA data
(:class:`rt2_sim.vqa_generation.SceneSource`: task episodes, the arm posed over the workspace in
``arm_pose_rate`` of them).

CLI: ``generate_patch_labels --output FILE.npz --scenes N --seed S`` prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rt2_sim.scene import PALETTE
from rt2_sim.tasks import CONTAINER_COLOURS

#: Label names, in id order: background, the arm, then every object and container colour.
CLASSES: tuple[str, ...] = ("background", "arm", *(name for name, _ in PALETTE),
                            *(n for n in CONTAINER_COLOURS if n not in dict(PALETTE)))
_COLOUR_RGB = np.array([dict(PALETTE).get(n, CONTAINER_COLOURS.get(n)) for n in CLASSES[2:]])
#: Body-name fragments of the arm's links (Panda: ``link0..7``, ``hand``, ``*finger``).
ARM_BODY_MARKERS = ("link", "hand", "finger")


def cell_labels(classes: np.ndarray, grid: int = 8, object_fraction: float = 0.06,
                arm_fraction: float = 0.3) -> np.ndarray:
    """Per-pixel class ids ``(H, W)`` → per-cell labels ``(grid, grid)`` (rules: module doc).

    Cell ``i`` covers pixel rows (and columns) ``round(i H / grid)`` up to
    ``round((i + 1) H / grid)``: the pixels a patch covers once the image is resized to
    ``grid`` patches a side (a 224 px render and 12 px patches of a 144 px image: 12 cells of
    18–19 px). ``H`` need not be a multiple of ``grid``.

    Raises:
        ValueError: when ``H`` or ``W`` is smaller than ``grid`` (a cell would be empty).
    """
    h, w = classes.shape
    if h < grid or w < grid:
        raise ValueError(f"classes: expected at least grid={grid} pixels a side, got {(h, w)}")
    rows = np.rint(np.arange(grid + 1) * h / grid).astype(int)
    cols = np.rint(np.arange(grid + 1) * w / grid).astype(int)
    out = np.zeros((grid, grid), np.int64)
    for r in range(grid):
        for c in range(grid):
            cell = classes[rows[r]:rows[r + 1], cols[c]:cols[c + 1]].ravel()
            objects = cell[cell >= 2]
            if objects.size >= object_fraction * cell.size:
                out[r, c] = np.bincount(objects).argmax()
            elif np.count_nonzero(cell == 1) >= arm_fraction * cell.size:
                out[r, c] = 1
    return out


class PixelClasses:
    """Renders per-pixel class ids of an :class:`~rt2_sim.simulation.ArmSimulation`'s scene
    camera (MuJoCo segmentation rendering at the camera's resolution)."""

    def __init__(self, sim) -> None:
        import mujoco

        model = sim.model
        cfg = sim.scene_config
        self._sim = sim
        self._renderer = mujoco.Renderer(model, cfg.image_height, cfg.image_width)
        self._renderer.enable_segmentation_rendering()
        self._camera = model.camera(cfg.camera_name).id
        bodies = [model.body(i).name for i in range(model.nbody)]
        owner = [bodies[b] for b in model.geom_bodyid]
        self._arm = np.array([any(m in b for m in ARM_BODY_MARKERS) for b in owner] + [False])
        self._object = np.array([b.startswith(("object_", "container_")) for b in owner] + [False])

    def __call__(self) -> np.ndarray:
        """Class ids ``(H, W)`` int64 (:data:`CLASSES`) of the current state."""
        self._renderer.update_scene(self._sim.data, camera=self._camera)
        geom = self._renderer.render()[..., 0].astype(np.int64)  # -1: nothing
        geom = np.where(geom >= 0, geom, len(self._arm) - 1)  # the sentinel entry: background
        out = np.zeros(geom.shape, np.int64)
        out[self._arm[geom]] = 1
        objects = self._object[geom]
        if objects.any():
            rgb = self._sim.model.geom_rgba[geom[objects], :3]
            nearest = np.argmin(((rgb[:, None] - _COLOUR_RGB[None]) ** 2).sum(-1), axis=1)
            out[objects] = 2 + nearest
        return out

    def close(self) -> None:
        self._renderer.close()


def generate(output: str | Path, scenes: int, seed: int = 0, split: str = "seen",
             grid: int = 8, arm_pose_rate: float = 0.5) -> dict:
    """Render ``scenes`` scenes (seeds ``seed + i``) and write images and cell labels.

    Returns:
        Summary: output, scenes, grid, classes, cells per class, seconds.

    Raises:
        ValueError: when ``scenes`` < 1.
    """
    from rt2_sim.vqa_generation import SceneSource

    if scenes < 1:
        raise ValueError(f"scenes: expected >= 1, got {scenes}")
    started = time.perf_counter()
    source = SceneSource(arm_pose_rate)
    try:
        image, *_ = source.next(seed, split)
        sim = source.task_simulation
        pixels = PixelClasses(sim)
        try:
            images = np.zeros((scenes, *image.shape), np.uint8)
            labels = np.zeros((scenes, grid, grid), np.int64)
            for i in range(scenes):
                if i:
                    image, *_ = source.next(seed + i, split)
                images[i] = image
                labels[i] = cell_labels(pixels(), grid)
        finally:
            pixels.close()  # the segmentation renderer's GL context, also on an error
    finally:
        source.close()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(output, images=images, labels=labels, classes=np.array(CLASSES))
    counts = np.bincount(labels.ravel(), minlength=len(CLASSES))
    return {"output": str(output), "scenes": scenes, "grid": grid, "classes": list(CLASSES),
            "cells": {c: int(n) for c, n in zip(CLASSES, counts, strict=True)},
            "seconds": round(time.perf_counter() - started, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="generate_patch_labels", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--output", required=True, help="output .npz file")
    parser.add_argument("--scenes", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=10_000, help="seed of the first scene")
    parser.add_argument("--split", default="seen")
    parser.add_argument("--grid", type=int, default=8, help="cells per image side")
    parser.add_argument("--arm-pose-rate", type=float, default=0.5)
    args = parser.parse_args(argv)
    try:
        summary = generate(args.output, args.scenes, args.seed, args.split, args.grid,
                           args.arm_pose_rate)
    except (OSError, ValueError) as exc:
        print(f"generate_patch_labels: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
