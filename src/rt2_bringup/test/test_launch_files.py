"""sim.launch.py and robot.launch.py: compile, and evaluate.

``launch``/``launch_ros`` (and MoveIt, ros_gz) are not on PyPI, so the launch files are evaluated
here against a recording stand-in of the launch API and of ``MoveItConfigsBuilder``
(conftest.py); the checks are on what the launch file asks for: which nodes, with which
parameters, in which order. Where the real ``launch_ros`` is importable, the launch descriptions
are also evaluated with it (skipped otherwise, saying so).
"""

from __future__ import annotations

import importlib.util
import py_compile
from pathlib import Path

import pytest

from rt2_bringup import moveit_graph as mg
from rt2_bringup.graph import EmbeddedGraphConfig, embedded_graph
from rt2_policy.proprioception import PANDA_FINGER_JOINTS, PANDA_FINGER_OPEN_POSITION

LAUNCH_DIR = Path(__file__).resolve().parents[1] / "launch"
LAUNCH_FILES = ["sim.launch.py", "robot.launch.py"]


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_files_compile(name):
    py_compile.compile(str(LAUNCH_DIR / name), doraise=True)


def test_sim_arguments_have_defaults_and_descriptions(launch_standin):
    ls = launch_standin
    declared, _ = ls.evaluate("sim.launch.py", simulator="mujoco", backend="scripted")
    for name in ("simulator", "backend", "model_path", "server_uri", "control_rate",
                 "instruction", "rviz", "gui"):
        assert name in declared and declared[name]["description"], name
    assert declared["simulator"]["default_value"] == "gazebo"


def test_mujoco_launches_exactly_the_embedded_graph(launch_standin):
    ls = launch_standin
    _, actions = ls.evaluate("sim.launch.py", simulator="mujoco", backend="scripted", seed=4,
                          control_rate=3.0)
    expected = embedded_graph(EmbeddedGraphConfig(backend="scripted", seed=4, control_rate=3.0))
    nodes = [a for a in actions if isinstance(a, ls.Node)]
    assert [(n.kwargs["package"], n.kwargs["executable"], n.kwargs["name"]) for n in nodes] == [
        (s.package, s.executable, s.name) for s in expected]
    assert [ls.merged_parameters(n) for n in nodes] == [s.parameters for s in expected]
    assert not [a for a in actions if isinstance(a, ls.RegisterEventHandler)]  # no instruction


def test_instruction_is_sent_once_the_graph_is_up(launch_standin):
    ls = launch_standin
    _, actions = ls.evaluate("sim.launch.py", simulator="mujoco", backend="scripted",
                          instruction="pick up the red cube")
    (handler,) = [a for a in actions if isinstance(a, ls.RegisterEventHandler)]
    event = handler.args[0]
    assert isinstance(event, ls.OnProcessStart)
    assert event.kwargs["target_action"].kwargs["name"] == "rt2_policy"
    (timer,) = event.kwargs["on_start"]
    (sender,) = timer.kwargs["actions"]
    assert sender.kwargs["executable"] == "send_instruction"
    assert sender.kwargs["arguments"][0] == "pick up the red cube"


def test_gazebo_graph_and_start_up_order(launch_standin):
    ls = launch_standin
    _, actions = ls.evaluate("sim.launch.py", backend="scripted", gui="false")
    (include,) = [a for a in actions if isinstance(a, ls.IncludeLaunchDescription)]
    source = include.args[0].args[0]
    assert source == str(ls.share / "ros_gz_sim" / "launch" / "gz_sim.launch.py")
    gz = dict(include.kwargs["launch_arguments"])
    assert gz["gz_args"].startswith("-r -s --headless-rendering ")
    world = Path(gz["gz_args"].split()[-1])
    assert world.name == "rt2_table.sdf" and world.is_file()
    nodes = ls.nodes_of(actions)
    assert set(nodes) == {"robot_state_publisher", "rt2_gz_bridge", "rt2_gripper_bridge",
                          "rt2_policy", "rt2_spawn_panda"}
    assert ls.merged_parameters(nodes["rt2_policy"])["use_sim_time"] is True
    bridge = Path(ls.merged_parameters(nodes["rt2_gz_bridge"])["config_file"])
    assert bridge.is_file() and bridge.name == "ros_gz_bridge.yaml"
    assert ls.merged_parameters(nodes["robot_state_publisher"])["robot_description"].startswith(
        "<robot")
    # spawn -> joint_state_broadcaster -> arm -> hand -> servo, each on the previous one's exit
    chain, target = [], nodes["rt2_spawn_panda"]
    handlers = [a.args[0] for a in actions if isinstance(a, ls.RegisterEventHandler)]
    while True:
        nxt = [h for h in handlers if h.kwargs["target_action"] is target]
        if not nxt:
            break
        assert isinstance(nxt[0], ls.OnProcessExit)
        started = nxt[0].kwargs["on_exit"]
        chain.append([s.kwargs["name"] for s in started])
        target = started[-1]
    assert chain == [["spawner_joint_state_broadcaster"], ["spawner_panda_arm_controller"],
                     ["spawner_panda_hand_controller"], ["servo_node"]]
    servo = target
    files = [p for p in servo.kwargs["parameters"] if isinstance(p, str)]
    assert [Path(f).name for f in files] == ["servo_gazebo.yaml"] and Path(files[0]).is_file()
    servo_params = ls.merged_parameters(servo)
    assert servo_params["use_sim_time"] is True
    assert "robot_description_semantic" in servo_params
    # MoveIt config: moveit_resources' Panda with rt2's Gazebo description, as the servo demos.
    calls = ls.MoveItConfigsBuilder.calls
    assert calls[0] == ("builder", "moveit_resources_panda", None)
    description = dict(calls[1:])["robot_description"]["file_path"]
    assert description.endswith("urdf/panda_gz.urdf.xacro") and Path(description).is_file()
    assert dict(calls[1:])["joint_limits"]["file_path"] == "config/hard_joint_limits.yaml"


def test_robot_launch_safety_defaults(launch_standin):
    ls = launch_standin
    declared, actions = ls.evaluate("robot.launch.py", backend="scripted")
    assert declared["dry_run"]["default_value"] == "true"
    nodes = ls.nodes_of(actions)
    policy = ls.merged_parameters(nodes["rt2_policy"])
    assert policy["dry_run"] is True
    assert policy["max_linear_speed"] == 0.1 and policy["max_angular_speed"] == 0.5
    assert policy["estop_topic"] == "/rt2/estop"
    assert policy["ready_service"] == mg.READY_SERVICE
    assert policy["image_topic"] == "/camera/image_raw"
    # moveit_py's node shares the ready-pose process: no __node remap (name=None).
    ready = nodes["ready_pose"]
    assert ready.kwargs["name"] is None
    ready_params = ls.merged_parameters(ready)
    assert ready_params["planning_pipelines"] == {"pipeline_names": ["ompl"]}  # whole config
    assert (ready_params["planning_group"], ready_params["named_state"]) == ("panda_arm", "ready")
    camera = nodes["camera"]
    assert camera.kwargs["package"] == "usb_cam"
    assert dict(camera.kwargs["remappings"])["image_raw"] == "/camera/image_raw"
    assert ls.merged_parameters(nodes["rt2_gripper_bridge"])["action_name"] == mg.GRIPPER_ACTION
    servo = nodes["servo_node"]
    assert [Path(p).name for p in servo.kwargs["parameters"] if isinstance(p, str)] == [
        "servo_robot.yaml"]
    assert not [a for a in actions if isinstance(a, ls.RegisterEventHandler)]
    calls = ls.MoveItConfigsBuilder.calls
    assert calls[0] == ("builder", "moveit_resources_panda", "moveit_resources_panda_moveit_config")
    assert Path(dict(calls[1:])["moveit_cpp"]["file_path"]).name == "moveit_py.yaml"


def test_robot_launch_options(launch_standin):
    ls = launch_standin
    _, actions = ls.evaluate("robot.launch.py", backend="scripted", dry_run="false",
                          camera="realsense", use_ready_pose="false", gripper_action="",
                          max_linear_speed=0.05)
    nodes = ls.nodes_of(actions)
    policy = ls.merged_parameters(nodes["rt2_policy"])
    assert policy["dry_run"] is False and policy["ready_service"] == ""
    assert policy["max_linear_speed"] == 0.05
    assert policy["image_topic"] == mg.REALSENSE_IMAGE_TOPIC
    assert set(nodes) == {"servo_node", "rt2_policy"}
    (include,) = [a for a in actions if isinstance(a, ls.IncludeLaunchDescription)]
    assert include.args[0].args[0].endswith("realsense2_camera/launch/rs_launch.py")
    with pytest.raises(ValueError, match="dry_run: expected true or false"):
        ls.evaluate("robot.launch.py", backend="scripted", dry_run="maybe")


def test_bad_arguments_fail_with_a_clear_message(launch_standin, monkeypatch):
    ls = launch_standin
    with pytest.raises(RuntimeError, match="simulator: expected gazebo or mujoco"):
        ls.evaluate("sim.launch.py", simulator="isaac", backend="scripted")
    # backend local needs a checkpoint when no trained model is installed
    monkeypatch.setattr("rt2_bringup.launch_actions.shipped_model", lambda: "")
    with pytest.raises(ValueError, match="model_path"):
        ls.evaluate("sim.launch.py", simulator="mujoco")


def test_an_empty_model_path_runs_the_installed_trained_model(launch_standin):
    from rt2_bringup.launch_actions import shipped_model

    installed = shipped_model()
    assert installed.endswith("share/rt2_policy/models/rt2_tiny_sim"), installed
    _, actions = launch_standin.evaluate("sim.launch.py", simulator="mujoco")
    policy = launch_standin.merged_parameters(launch_standin.nodes_of(actions)["rt2_policy"])
    assert policy["model_path"] == installed


#: Each launch graph with the policy node: (launch file, arguments selecting it).
POLICY_GRAPHS = [
    ("sim.launch.py", {"simulator": "mujoco"}),
    ("sim.launch.py", {"simulator": "gazebo"}),
    ("robot.launch.py", {}),
]
GRAPH_IDS = ["sim-mujoco", "sim-gazebo", "robot"]


def policy_parameters(ls, launch_file: str, **arguments) -> dict:
    _, actions = ls.evaluate(launch_file, backend="scripted", **arguments)
    return ls.merged_parameters(ls.nodes_of(actions)["rt2_policy"])


@pytest.mark.parametrize("launch_file,selector", POLICY_GRAPHS, ids=GRAPH_IDS)
@pytest.mark.parametrize("arguments,expected", [
    ({"gripper_joints": "fr3_finger_joint1,fr3_finger_joint2", "gripper_open_position": "0.04"},
     {"joint_states_topic": "/joint_states",
      "gripper_joints": ["fr3_finger_joint1", "fr3_finger_joint2"],
      "gripper_open_position": 0.04}),
    ({"gripper_joints": " [left_finger, right_finger] ", "gripper_open_position": "0.05",
      "joint_states_topic": "/franka/joint_states"},
     {"joint_states_topic": "/franka/joint_states",
      "gripper_joints": ["left_finger", "right_finger"], "gripper_open_position": 0.05}),
    ({"gripper_joints": "robotiq_85_left_knuckle_joint"},
     {"joint_states_topic": "/joint_states", "gripper_joints": ["robotiq_85_left_knuckle_joint"],
      "gripper_open_position": 0.04}),
], ids=["fr3", "renamed-topic-and-opening", "one-joint"])
def test_gripper_arguments_reach_the_policy_node(launch_standin, launch_file, selector,
                                                 arguments, expected):
    policy = policy_parameters(launch_standin, launch_file, **selector, **arguments)
    assert {name: policy[name] for name in expected} == expected
    assert all(type(j) is str for j in policy["gripper_joints"])  # a string array parameter
    assert type(policy["gripper_open_position"]) is float  # a double parameter


@pytest.mark.parametrize("launch_file,selector", POLICY_GRAPHS, ids=GRAPH_IDS)
def test_gripper_arguments_default_to_the_policy_nodes_defaults(launch_standin, launch_file,
                                                                 selector):
    declared, _ = launch_standin.evaluate(launch_file, backend="scripted", **selector)
    for name in ("joint_states_topic", "gripper_joints", "gripper_open_position"):
        assert declared[name]["description"], name
    assert declared["gripper_joints"]["default_value"] == "panda_finger_joint1,panda_finger_joint2"
    assert float(declared["gripper_open_position"]["default_value"]) == PANDA_FINGER_OPEN_POSITION
    policy = policy_parameters(launch_standin, launch_file, **selector)
    assert policy["joint_states_topic"] == "/joint_states"
    assert policy["gripper_joints"] == list(PANDA_FINGER_JOINTS)
    assert policy["gripper_open_position"] == PANDA_FINGER_OPEN_POSITION
    assert declared["arm_joints"]["description"] and declared["tcp_offset"]["description"]
    assert policy["arm_joints"] == [f"panda_joint{i}" for i in range(1, 8)]
    assert policy["tcp_offset"] == 0.13


@pytest.mark.parametrize("launch_file,selector", POLICY_GRAPHS, ids=GRAPH_IDS)
def test_tcp_arguments_reach_the_policy_node(launch_standin, launch_file, selector):
    fr3 = ",".join(f"fr3_joint{i}" for i in range(1, 8))
    policy = policy_parameters(launch_standin, launch_file, **selector, arm_joints=fr3,
                               tcp_offset="0.1034")
    assert policy["arm_joints"] == fr3.split(",") and policy["tcp_offset"] == 0.1034
    with pytest.raises(ValueError, match="tcp_offset: expected a number \\(m\\)"):
        policy_parameters(launch_standin, launch_file, **selector, tcp_offset="long")
    with pytest.raises(ValueError, match="arm_joints: expected the 7 arm joints"):
        policy_parameters(launch_standin, launch_file, **selector, arm_joints="j1,j2")


@pytest.mark.parametrize("launch_file,selector", POLICY_GRAPHS, ids=GRAPH_IDS)
@pytest.mark.parametrize("arguments,message", [
    ({"gripper_joints": ""}, "gripper_joints: expected comma-separated joint names"),
    ({"gripper_joints": "[]"}, "gripper_joints: expected comma-separated joint names"),
    ({"gripper_joints": "fr3_finger_joint1,,fr3_finger_joint2"},
     "gripper_joints: expected comma-separated joint names"),
    ({"gripper_joints": "fr3_finger_joint1,"},
     "gripper_joints: expected comma-separated joint names"),
    ({"gripper_joints": "fr3_finger_joint1,fr3_finger_joint1"},
     "gripper_joints: expected distinct joint names"),
    ({"gripper_open_position": "wide"}, "gripper_open_position: expected a number \\(m\\)"),
    ({"gripper_open_position": ""}, "gripper_open_position: expected a number \\(m\\)"),
    ({"gripper_open_position": "0"}, "gripper_open_position: expected a number in"),
    ({"gripper_open_position": "-0.04"}, "gripper_open_position: expected a number in"),
    ({"gripper_open_position": "4"}, "gripper_open_position: expected a number in"),
    ({"gripper_open_position": "nan"}, "gripper_open_position: expected a number in"),
    ({"joint_states_topic": "joint_states"}, "joint_states_topic: expected an absolute"),
])
def test_bad_gripper_arguments_raise(launch_standin, launch_file, selector, arguments, message):
    with pytest.raises(ValueError, match=f"{message}.*got"):
        launch_standin.evaluate(launch_file, backend="scripted", **selector, **arguments)


# --------------------------------------------------------------------------- real launch_ros
def _real_launch_available() -> bool:
    return importlib.util.find_spec("launch_ros") is not None


@pytest.mark.parametrize("launch_file,arguments", [
    ("sim.launch.py", {"simulator": "mujoco"}),
    ("sim.launch.py", {"simulator": "gazebo"}),
    ("robot.launch.py", {}),
])
def test_launch_description_with_real_launch_ros(launch_file, arguments):
    if not _real_launch_available():
        pytest.skip("launch_ros is not installed (not on PyPI); evaluated against the "
                    "recording stand-in above instead")
    if arguments.get("simulator") != "mujoco":
        for package in ("moveit_configs_utils", "ros_gz_sim"):
            if importlib.util.find_spec(package) is None:
                pytest.skip(f"{package} not installed: the Gazebo and robot graphs need MoveIt 2 "
                            "and ros_gz (apt, Jazzy)")
    from launch import LaunchContext
    from launch.actions import SetLaunchConfiguration
    from launch_ros.actions import Node as RealNode

    spec = importlib.util.spec_from_file_location(launch_file.replace(".", "_"),
                                                  LAUNCH_DIR / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = LaunchContext()
    description = module.generate_launch_description()
    actions = []
    for entity in description.entities:  # declares the defaults, then runs the OpaqueFunction
        actions += entity.visit(context) or []
        for name, value in {**arguments, "backend": "scripted"}.items():
            SetLaunchConfiguration(name, value).visit(context)
    assert sum(isinstance(a, RealNode) for a in actions) >= 2


def test_readme_launch_commands_use_declared_arguments(launch_standin):
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert "### Run it on your robot" in readme
    commands = []
    lines = readme.splitlines()
    for i, line in enumerate(lines):
        if "ros2 launch rt2_bringup" in line:
            text = line
            while text.rstrip().endswith("\\"):
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i]
            commands.append(text.split("ros2 launch rt2_bringup", 1)[1].split("#")[0].split('"')[0])
    launched = {c.split()[0] for c in commands}
    assert launched == {"sim.launch.py", "robot.launch.py"}
    for command in commands:
        words = command.split()
        declared, _ = launch_standin.evaluate(words[0], backend="scripted")
        used = {w.split(":=")[0] for w in words[1:] if ":=" in w}
        assert used <= set(declared), f"README uses undeclared arguments {used - set(declared)}"
    for needle in ("_action/cancel_goal", "/rt2/estop", "send_goal", "Message Publisher"):
        assert needle in readme


def test_policy_config_from_launch_strings():
    from rt2_bringup.launch_actions import POLICY_ARGUMENTS, policy_config

    values = {name: default for name, (default, _) in POLICY_ARGUMENTS.items()}
    remote = policy_config({**values, "backend": "remote", "server_uri": "ws://gpu:9000",
                            "control_rate": "3"})
    assert (remote.backend, remote.server_uri, remote.control_rate) == ("remote",
                                                                        "ws://gpu:9000", 3.0)
    with pytest.raises(ValueError, match="control_rate: expected a number"):
        policy_config({**values, "backend": "scripted", "control_rate": "fast"})
    with pytest.raises(ValueError, match="server_uri"):
        policy_config({**values, "backend": "remote", "server_uri": "gpu:9000"})
    fr3 = policy_config({**values, "backend": "scripted",
                         "gripper_joints": "fr3_finger_joint1, fr3_finger_joint2",
                         "gripper_open_position": "4e-2"})
    assert fr3.gripper_joints == ("fr3_finger_joint1", "fr3_finger_joint2")
    assert fr3.gripper_open_position == 0.04
    defaults = policy_config({**values, "backend": "scripted"})
    assert defaults.gripper_joints == PANDA_FINGER_JOINTS
    assert defaults.gripper_open_position == PANDA_FINGER_OPEN_POSITION
    assert defaults == EmbeddedGraphConfig(backend="scripted")  # the launch defaults = the graph's
