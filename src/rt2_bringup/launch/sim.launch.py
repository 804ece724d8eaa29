"""ros2 launch rt2_bringup sim.launch.py [simulator:=mujoco] [model_path:=DIR] [control_rate:=5.0]

Starts the embedded MuJoCo simulator (camera, joint states and a MoveIt Servo stand-in on
/servo_node/delta_twist_cmds) and the rt2 policy node: the same graph `make demo` runs, built from
rt2_bringup.graph. The Gazebo + MoveIt Servo variant (simulator:=gazebo) is tracked separately.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from rt2_bringup.graph import EmbeddedGraphConfig, embedded_graph


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    simulator = arg("simulator")
    if simulator != "mujoco":
        raise RuntimeError(f"simulator:={simulator} is not available in this release; "
                           "use simulator:=mujoco")
    config = EmbeddedGraphConfig(
        backend=arg("backend"), model_path=arg("model_path"), device=arg("device"),
        control_rate=float(arg("control_rate")), seed=int(arg("seed")))
    return [Node(package=spec.package, executable=spec.executable, name=spec.name,
                 parameters=[spec.parameters], output="screen")
            for spec in embedded_graph(config)]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("simulator", default_value="mujoco",
                              description="simulator: mujoco (embedded)"),
        DeclareLaunchArgument("backend", default_value="local",
                              description="policy backend: local | scripted"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="checkpoint directory or Hugging Face hub id"),
        DeclareLaunchArgument("device", default_value="cpu", description="torch device"),
        DeclareLaunchArgument("control_rate", default_value="5.0",
                              description="policy steps per second, Hz"),
        DeclareLaunchArgument("seed", default_value="0", description="scene seed"),
        OpaqueFunction(function=_nodes),
    ])
