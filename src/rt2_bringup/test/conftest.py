"""Shared fixtures of the rt2_bringup tests: a recording stand-in of the launch API.

``launch``/``launch_ros`` (and MoveIt's ``moveit_configs_utils``) are not on PyPI, so the launch
files are evaluated against stand-ins with the classes and call signatures they use (launch_ros
``Node``, ``IncludeLaunchDescription``, ``RegisterEventHandler`` with ``OnProcessExit`` /
``OnProcessStart``, ``TimerAction``, ``OpaqueFunction``, ``LaunchConfiguration``,
``MoveItConfigsBuilder``); tests then check what the launch file asked for.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

LAUNCH_DIR = Path(__file__).resolve().parents[1] / "launch"


class Recorded:
    """An action or description recorded with the arguments it was built with."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kwargs})"


class Node(Recorded):
    pass


class IncludeLaunchDescription(Recorded):
    pass


class RegisterEventHandler(Recorded):
    pass


class OnProcessExit(Recorded):
    pass


class OnProcessStart(Recorded):
    pass


class TimerAction(Recorded):
    pass


class PythonLaunchDescriptionSource(Recorded):
    pass


class LaunchDescription(Recorded):
    pass


class DeclareLaunchArgument(Recorded):
    pass


class OpaqueFunction(Recorded):
    pass


class LaunchConfiguration:
    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context) -> str:
        return context.launch_configurations[self.name]


class FakeMoveItConfigs:
    def __init__(self, calls: list) -> None:
        self.calls = calls
        self.robot_description = {"robot_description": "<robot name='panda'/>"}
        self.robot_description_semantic = {"robot_description_semantic": "<robot/>"}
        self.robot_description_kinematics = {"robot_description_kinematics": {}}
        self.joint_limits = {"robot_description_planning": {}}

    def to_dict(self) -> dict:
        return {**self.robot_description, **self.robot_description_semantic,
                "planning_pipelines": {"pipeline_names": ["ompl"]}}


class FakeMoveItConfigsBuilder:
    calls: list = []

    def __init__(self, robot_name: str, package_name: str | None = None) -> None:
        FakeMoveItConfigsBuilder.calls.append(("builder", robot_name, package_name))

    def __getattr__(self, method):
        def record(**kwargs):
            FakeMoveItConfigsBuilder.calls.append((method, kwargs))
            return self
        return record

    def to_moveit_configs(self):
        return FakeMoveItConfigs(FakeMoveItConfigsBuilder.calls)


@pytest.fixture
def fake_launch(monkeypatch, tmp_path):
    """Install the stand-in launch API, MoveItConfigsBuilder and shares of non-rt2 packages."""
    modules = {
        "launch": {"LaunchDescription": LaunchDescription},
        "launch.actions": {"DeclareLaunchArgument": DeclareLaunchArgument,
                           "OpaqueFunction": OpaqueFunction,
                           "IncludeLaunchDescription": IncludeLaunchDescription,
                           "RegisterEventHandler": RegisterEventHandler,
                           "TimerAction": TimerAction},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch.event_handlers": {"OnProcessExit": OnProcessExit,
                                  "OnProcessStart": OnProcessStart},
        "launch.launch_description_sources": {
            "PythonLaunchDescriptionSource": PythonLaunchDescriptionSource},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Node},
        "moveit_configs_utils": {"MoveItConfigsBuilder": FakeMoveItConfigsBuilder},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    FakeMoveItConfigsBuilder.calls = []
    import ament_index_python.packages as packages

    real = packages.get_package_share_directory

    def share(package: str) -> str:
        if package.startswith("rt2_"):
            return real(package)
        return str(tmp_path / "share" / package)  # ros_gz_sim, realsense2_camera, …

    monkeypatch.setattr(packages, "get_package_share_directory", share)
    return tmp_path / "share"


def evaluate_launch(launch_file: str, **arguments) -> tuple[dict, list]:
    """``(declared arguments with defaults, actions)`` of ``launch_file`` with ``arguments``."""
    spec = importlib.util.spec_from_file_location(launch_file.replace(".", "_"),
                                                  LAUNCH_DIR / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    entities = description.args[0]
    declared = {e.args[0]: e.kwargs for e in entities if isinstance(e, DeclareLaunchArgument)}
    (opaque,) = [e for e in entities if isinstance(e, OpaqueFunction)]
    unknown = set(arguments) - set(declared)
    assert not unknown, f"undeclared launch arguments {unknown}"
    values = {name: kw["default_value"] for name, kw in declared.items()}
    values.update({k: str(v) for k, v in arguments.items()})
    context = types.SimpleNamespace(launch_configurations=values)
    return declared, opaque.kwargs["function"](context)


def nodes_of(actions: list) -> dict[str, Node]:
    return {a.kwargs["name"] or a.kwargs["executable"]: a for a in actions if isinstance(a, Node)}


def merged_parameters(node: Node) -> dict:
    out = {}
    for item in node.kwargs["parameters"]:
        if isinstance(item, dict):
            out.update(item)
    return out



@pytest.fixture
def launch_standin(fake_launch):
    """The stand-in, installed: its classes, ``evaluate(launch_file, **arguments) -> (declared
    arguments, actions)``, ``nodes_of``, ``merged_parameters``, the recorded
    MoveItConfigsBuilder and the fake share directory of non-rt2 packages."""
    return types.SimpleNamespace(
        Node=Node, IncludeLaunchDescription=IncludeLaunchDescription,
        RegisterEventHandler=RegisterEventHandler, OnProcessExit=OnProcessExit,
        OnProcessStart=OnProcessStart, TimerAction=TimerAction,
        MoveItConfigsBuilder=FakeMoveItConfigsBuilder, evaluate=evaluate_launch,
        nodes_of=nodes_of, merged_parameters=merged_parameters, share=fake_launch)
