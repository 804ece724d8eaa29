"""The node graph shared by sim.launch.py and the demo: names agree with what the nodes declare."""

import py_compile
from pathlib import Path

import pytest

from rt2_bringup.graph import TOPICS, EmbeddedGraphConfig, embedded_graph, parameters_yaml

LAUNCH_DIR = Path(__file__).resolve().parents[1] / "launch"


def test_policy_parameters_are_declared_by_the_node():
    pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: run make setup")
    pytest.importorskip("rt2_msgs.msg", reason="rt2_msgs not built: run make setup")
    from rt2_policy.policy_node import PARAMETERS

    spec = embedded_graph(EmbeddedGraphConfig(backend="scripted"))[1]
    unknown = set(spec.parameters) - set(PARAMETERS) - {"use_sim_time"}
    assert not unknown, f"graph sets parameters the policy node does not declare: {unknown}"
    assert spec.parameters["twist_topic"] == "/servo_node/delta_twist_cmds"  # MoveIt Servo's name


def test_sim_topics_match_the_graph():
    from rt2_sim import sim_node

    assert "/" + sim_node.TWIST_TOPIC == TOPICS["twist"]
    assert "/" + sim_node.IMAGE_TOPIC == TOPICS["image"]
    assert "/" + sim_node.GRIPPER_TOPIC == TOPICS["gripper"]
    assert "/" + sim_node.JOINT_STATES_TOPIC == TOPICS["joint_states"]


def test_config_validation_and_yaml():
    with pytest.raises(ValueError, match="model_path"):
        EmbeddedGraphConfig(backend="local", model_path="")
    with pytest.raises(ValueError, match="backend"):
        EmbeddedGraphConfig(backend="magic")
    specs = embedded_graph(EmbeddedGraphConfig(backend="scripted", seed=3))
    assert [s.name for s in specs] == ["rt2_sim", "rt2_policy"]
    assert parameters_yaml(specs[0])["rt2_sim"]["ros__parameters"]["seed"] == 3


@pytest.mark.parametrize("launch_file", sorted(LAUNCH_DIR.glob("*.launch.py")))
def test_launch_files_compile(launch_file):
    py_compile.compile(str(launch_file), doraise=True)


# sim.launch.py / robot.launch.py evaluation (stand-in and real launch_ros): test_launch_files.py
