"""The Gazebo and hardware graphs as data: structure, ordering and safety defaults."""

import pytest

from rt2_bringup import moveit_graph as mg
from rt2_bringup.graph import EmbeddedGraphConfig, embedded_graph, policy_node

SCRIPTED = EmbeddedGraphConfig(backend="scripted", control_rate=3.0)


def gazebo(**kwargs):
    return mg.gazebo_graph(SCRIPTED, world="/w/rt2_table.sdf", bridge_config="/c/bridge.yaml",
                           servo_params="/c/servo.yaml", robot_description="<robot/>",
                           moveit_params={"robot_description_semantic": "<srdf/>"}, **kwargs)


def test_gazebo_graph_order_and_contents():
    graph = gazebo()
    (gz,) = graph.includes
    assert (gz.package, gz.launch_file) == ("ros_gz_sim", "launch/gz_sim.launch.py")
    assert gz.arguments["gz_args"] == "-r /w/rt2_table.sdf"
    assert [s.name for s in graph.nodes] == ["robot_state_publisher", "rt2_gz_bridge",
                                             "rt2_gripper_bridge", "rt2_policy"]
    assert graph.spawn.executable == "create"
    assert [s.executable for s in graph.controllers] == ["spawner"] * 3
    (servo,) = graph.after_controllers
    assert (servo.package, servo.executable, servo.name) == ("moveit_servo", "servo_node",
                                                             "servo_node")
    assert servo.parameters["robot_description_semantic"] == "<srdf/>"
    assert servo.parameter_files == ("/c/servo.yaml",)
    for spec in graph.all_nodes():  # one clock for everyone
        assert spec.parameters.get("use_sim_time") is True, spec.name
    assert graph.node("rt2_gz_bridge").parameters["config_file"] == "/c/bridge.yaml"


def test_headless_gazebo_still_renders_the_camera():
    assert gazebo(gui=False).includes[0].arguments["gz_args"] == (
        "-r -s --headless-rendering /w/rt2_table.sdf")


def test_policy_is_the_embedded_graphs_policy_with_sim_time():
    embedded = next(s for s in embedded_graph(SCRIPTED) if s.name == "rt2_policy")
    sim = gazebo().node("rt2_policy")
    assert {**embedded.parameters, "use_sim_time": True} == sim.parameters
    assert sim.parameters["control_rate"] == 3.0


def test_robot_graph_safety_defaults():
    graph = mg.robot_graph(SCRIPTED, servo_params="/c/servo_robot.yaml",
                           safety=mg.RobotSafety(), camera=mg.CameraConfig())
    policy = graph.node("rt2_policy").parameters
    assert policy["dry_run"] is True  # moves only with dry_run:=false
    assert policy["max_linear_speed"] == 0.1 and policy["max_angular_speed"] == 0.5
    assert policy["use_sim_time"] is False
    assert policy["ready_service"] == mg.READY_SERVICE
    names = [s.name for s in graph.nodes]
    assert names == ["camera", "servo_node", "rt2_gripper_bridge", "rt2_ready_pose", "rt2_policy"]
    assert graph.spawn is None and graph.controllers == ()  # the robot driver runs controllers
    # The policy is the same node as in simulation, with the safety overrides.
    base = policy_node(SCRIPTED).parameters
    assert {k: policy[k] for k in base} == base
    assert set(policy) - set(base) == {"dry_run", "max_linear_speed", "max_angular_speed",
                                       "estop_topic", "ready_service"}


def test_robot_graph_live_and_cameras():
    live = mg.robot_graph(SCRIPTED, servo_params="s", safety=mg.RobotSafety(dry_run=False),
                          camera=mg.CameraConfig(driver="realsense"), gripper_action="",
                          ready_pose=False)
    policy = live.node("rt2_policy").parameters
    assert policy["dry_run"] is False and policy["ready_service"] == ""
    assert policy["image_topic"] == mg.REALSENSE_IMAGE_TOPIC
    (rs,) = live.includes
    assert (rs.package, rs.arguments["enable_depth"]) == ("realsense2_camera", "false")
    assert [s.name for s in live.nodes] == ["servo_node", "rt2_policy"]
    usb = mg.robot_graph(SCRIPTED, servo_params="s", safety=mg.RobotSafety(),
                         camera=mg.CameraConfig(image_topic="/wrist/image_raw"))
    camera = usb.node("camera")
    assert dict(camera.remappings) == {"image_raw": "/wrist/image_raw",
                                       "camera_info": "/wrist/camera_info"}
    assert usb.node("rt2_policy").parameters["image_topic"] == "/wrist/image_raw"
    with pytest.raises(KeyError, match="node: expected one of"):
        usb.node("nope")


@pytest.mark.parametrize("kwargs,field", [
    ({"dry_run": "false"}, "dry_run"),
    ({"max_linear_speed": 0.0}, "max_linear_speed"),
    ({"max_angular_speed": 10.0}, "max_angular_speed"),
    ({"estop_topic": "estop"}, "estop_topic"),
])
def test_robot_safety_validation(kwargs, field):
    with pytest.raises(ValueError, match=f"{field}: expected"):
        mg.RobotSafety(**kwargs)


@pytest.mark.parametrize("kwargs,field", [
    ({"driver": "webcam"}, "driver"),
    ({"image_topic": "camera/image"}, "image_topic"),
    ({"width": 8}, "width"),
    ({"fps": 0}, "fps"),
])
def test_camera_validation(kwargs, field):
    with pytest.raises(ValueError, match=f"{field}: expected"):
        mg.CameraConfig(**kwargs)
