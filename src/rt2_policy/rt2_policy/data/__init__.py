"""Robot demonstration and vision-language datasets of rt2.

- :mod:`rt2_policy.data.lerobot_dataset`: LeRobot ``v2.1`` episodes (writer and reader).
- :mod:`rt2_policy.data.recorder`: pairs ROS actions with camera frames into episodes (pure).
- :mod:`rt2_policy.data.rosbag_import`: rosbag2 → LeRobot dataset (``rosbag_to_lerobot``).
- :mod:`rt2_policy.data.vqa`: image question/answer examples for co-fine-tuning.

Nothing in this package imports torch, transformers or rclpy.
"""

from rt2_policy.data.lerobot_dataset import (
    CODEBASE_VERSION,
    DatasetError,
    LeRobotDataset,
    LeRobotDatasetWriter,
)

__all__ = ["CODEBASE_VERSION", "DatasetError", "LeRobotDataset", "LeRobotDatasetWriter"]
