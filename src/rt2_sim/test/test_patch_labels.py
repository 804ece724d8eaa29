"""Per-patch labels from segmentation: the cell rules, and labels that match the rendered scene."""

from __future__ import annotations

import numpy as np
import pytest

from rt2_sim.patch_labels import CLASSES, cell_labels, generate, main


def test_cell_rules():
    red, arm = CLASSES.index("red"), CLASSES.index("arm")
    classes = np.zeros((16, 16), np.int64)
    classes[0:2, 0:2] = red  # 4 of 64 pixels of cell (0, 0): 6 % -> object
    classes[0:8, 8:16] = arm  # all of cell (0, 1)
    classes[8:16, 8:16] = arm
    classes[8, 8] = red  # 1 of 64: too small, the arm wins
    out = cell_labels(classes, grid=2)
    assert out.tolist() == [[red, arm], [0, arm]]
    with pytest.raises(ValueError, match="grid"):
        cell_labels(np.zeros((3, 16), np.int64), grid=4)


def test_cells_of_a_grid_that_does_not_divide_the_image():
    """224 px and 12 cells: cell i covers rows round(18.67 i) .. round(18.67 (i + 1))."""
    red = CLASSES.index("red")
    classes = np.zeros((224, 224), np.int64)
    classes[19:37, 205:224] = red  # exactly cell (1, 11): rows 19..36, columns 205..223
    out = cell_labels(classes, grid=12)
    assert out[1, 11] == red and np.count_nonzero(out) == 1
    classes[:] = 0
    classes[17:19, 0:12] = red  # rows 17-18 are cell (0, 0)'s last (19 x 19 = 361 pixels):
    # 24 pixels, 6.6 % -> red; split at row 18 (as flooring 18.67 would) neither cell gets 6 %
    out = cell_labels(classes, grid=12)
    assert out[0, 0] == red and out[1, 0] == 0 and np.count_nonzero(out) == 1


def test_labels_match_the_scene(tmp_path, capsys):
    from rt2_sim.vqa_generation import SceneSource

    path = tmp_path / "labels.npz"
    summary = generate(path, scenes=3, seed=5, arm_pose_rate=0.0)
    data = np.load(path)
    assert data["images"].shape == (3, 224, 224, 3) and data["labels"].shape == (3, 8, 8)
    assert list(data["classes"]) == list(CLASSES)
    assert summary["cells"]["arm"] > 0 and sum(summary["cells"].values()) == 3 * 64
    # every object's centre projects into a cell labelled with its colour (or a neighbour's:
    # the cell rule needs 6 % coverage) and the arm is seen at the top at the ready pose
    source = SceneSource(0.0)
    try:
        for k in range(3):
            image, facts, _, _ = source.next(5 + k)
            assert np.array_equal(image, data["images"][k])
            labels = data["labels"][k]
            for f in facts:
                r, c = min(int(f.image_y * 8), 7), min(int(f.image_x * 8), 7)
                near = labels[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2]
                assert CLASSES.index(f.colour) in near, (k, f)
            assert (labels[:3] == CLASSES.index("arm")).any()
    finally:
        source.close()
    assert main(["--output", str(tmp_path / "cli.npz"), "--scenes", "1"]) == 0
    assert '"scenes": 1' in capsys.readouterr().out
