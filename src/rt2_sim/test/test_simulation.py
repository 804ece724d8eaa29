"""ArmSimulation: reset, observations, gripper, camera, and a scripted pick that lifts a cube."""

import mujoco
import numpy as np
import pytest

from rt2_sim import scene
from rt2_sim.scene import SceneConfig
from rt2_sim.scripted_pick import scripted_pick
from rt2_sim.simulation import ArmSimulation


@pytest.fixture(scope="module")
def sim():
    simulation = ArmSimulation(seed=3)
    yield simulation
    simulation.close()


def test_reset_lays_out_scene_reproducibly(sim):
    info = sim.reset(11)
    assert info.seed == 11
    assert info.object_names == ("red cube", "green cube", "blue cube")
    assert len(set(info.colours)) == 3
    assert info.initial_positions.shape == (3, 3)
    assert not info.initial_positions.flags.writeable
    positions = sim.object_positions()
    np.testing.assert_allclose(
        np.array([positions[n] for n in info.object_names]), info.initial_positions, atol=1e-9
    )
    assert "red cube" in info.description and "\n" not in info.description
    np.testing.assert_allclose(sim.reset(11).initial_positions, info.initial_positions)
    assert not np.allclose(sim.reset(12).initial_positions, info.initial_positions)
    fresh = [sim.reset().seed for _ in range(3)]
    assert len(set(fresh)) == 3
    with pytest.raises(ValueError, match="seed: expected"):
        sim.reset(-1)


def test_reset_restores_ready_pose_and_keeps_time_monotonic(sim):
    sim.reset(1)
    sim.command_gripper(1.0)
    sim.command_twist([0.05, 0.0, 0.0], [0.0, 0.0, 0.0], "panda_link0", sim.time)
    sim.step(0.5)
    before = sim.time
    sim.reset(1)
    assert sim.time == pytest.approx(before)
    q = sim.joint_positions()
    np.testing.assert_allclose(q[:7], scene.READY_POSE, atol=1e-12)
    np.testing.assert_allclose(q[7:], [0.04, 0.04])
    np.testing.assert_array_equal(sim.joint_velocities(), np.zeros(9))
    assert sim.gripper_command == 0.0
    sim.step(0.2)  # the pre-reset command was dropped: the arm stays in its ready pose
    np.testing.assert_allclose(sim.joint_positions()[:7], scene.READY_POSE, atol=1e-3)


def test_observation_shapes_and_frames(sim):
    sim.reset(0)
    assert sim.joint_names == (*scene.ARM_JOINT_NAMES, *scene.FINGER_JOINT_NAMES)
    assert sim.joint_positions().shape == (9,) and sim.joint_positions().dtype == np.float64
    assert sim.joint_velocities().shape == (9,)
    position, quat = sim.ee_pose()
    # Ready pose: tcp 0.307 m in front of the base, pointing down (franka_description).
    np.testing.assert_allclose(position, [0.307, 0.0, 0.590 - scene.TCP_OFFSET], atol=3e-3)
    assert np.linalg.norm(quat) == pytest.approx(1.0)
    assert abs(quat[0]) == pytest.approx(1.0, abs=1e-3)  # (x, y, z, w) = (1, 0, 0, 0)
    base_position, base_quat = sim.base_pose()
    np.testing.assert_allclose(base_position, [0.0, 0.0, sim.scene_config.table_height])
    np.testing.assert_allclose(base_quat, [0.0, 0.0, 0.0, 1.0])


def test_step_advances_time_at_physics_rate(sim):
    sim.reset(0)
    t0 = sim.time
    for _ in range(10):
        sim.step(0.0033)  # fractions of a 2 ms step carry over
    assert sim.time - t0 == pytest.approx(0.033, abs=0.001 + 1e-9)
    sim.step(1.0)
    assert sim.time - t0 == pytest.approx(1.033, abs=0.001 + 1e-9)
    with pytest.raises(ValueError, match="duration: expected"):
        sim.step(-0.1)
    with pytest.raises(ValueError, match="duration: expected"):
        sim.step(float("nan"))


def test_gripper_closes_opens_and_validates(sim):
    sim.reset(0)
    sim.command_gripper(1.0)
    sim.step(1.0)
    assert np.all(sim.joint_positions()[7:] < 0.003)
    sim.command_gripper(-3.0)  # clamped to open
    assert sim.gripper_command == 0.0
    sim.step(1.0)
    assert np.all(sim.joint_positions()[7:] > 0.037)
    sim.command_gripper(7.0)
    assert sim.gripper_command == 1.0
    with pytest.raises(ValueError, match="closure: expected"):
        sim.command_gripper(float("nan"))
    with pytest.raises(ValueError, match="closure: expected"):
        sim.command_gripper("closed")


def test_render_shape_dtype_and_content(sim):
    sim.reset(0)
    image = sim.render()
    config = sim.scene_config
    assert image.shape == (config.image_height, config.image_width, 3)
    assert image.dtype == np.uint8
    assert image.std() > 20.0  # not a blank frame
    assert sim.render() is not image  # a fresh copy each time


def _project(sim, point_world):
    """Pixel (u, v) of a world point through camera_pose + camera_info (pinhole)."""
    intrinsics = sim.camera_info()
    position, quat = sim.camera_pose()
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, np.array([quat[3], *quat[:3]]))
    p_cam = rot.reshape(3, 3).T @ (np.asarray(point_world) - position)
    assert p_cam[2] > 0  # in front of the optical frame (z forward)
    return (
        intrinsics.fx * p_cam[0] / p_cam[2] + intrinsics.cx,
        intrinsics.fy * p_cam[1] / p_cam[2] + intrinsics.cy,
    )


def test_objects_appear_where_camera_model_projects_them(sim):
    # Checks render(), camera_info() and camera_pose() (optical frame) against each other.
    info = sim.reset(0)
    image = sim.render().astype(float)
    for name, rgb in zip(info.object_names, info.colours, strict=True):
        u, v = _project(sim, sim.object_positions()[name])
        assert 0 <= u < image.shape[1] and 0 <= v < image.shape[0], name
        patch = image[int(round(v)) - 1 : int(round(v)) + 2, int(round(u)) - 1 : int(round(u)) + 2]
        pixel = patch.reshape(-1, 3).mean(axis=0)
        channel = int(np.argmax(rgb))
        assert np.argmax(pixel) == channel, (name, pixel)
        assert pixel[channel] > pixel.sum() / 3 + 30, (name, pixel)


def test_camera_info_pinhole():
    config = SceneConfig(image_width=320, image_height=240, camera_fovy=np.radians(60.0))
    with ArmSimulation(config, seed=0) as sim:
        info = sim.camera_info()
        assert (info.width, info.height) == (320, 240)
        assert info.fx == pytest.approx(120.0 / np.tan(np.radians(30.0)))
        assert info.fy == pytest.approx(info.fx)
        assert (info.cx, info.cy) == (159.5, 119.5)
        assert info.frame_id == "scene_camera_optical_frame"
        assert len(info.k) == 9 and len(info.p) == 12
        assert sim.render().shape == (240, 320, 3)
        sim.close()
        sim.close()  # idempotent
        assert sim.render().shape == (240, 320, 3)  # renderer re-created lazily


def test_control_period_must_divide_into_physics_steps():
    from rt2_sim.cartesian_servo import ServoConfig

    with pytest.raises(ValueError, match="control_period: expected"):
        ArmSimulation(servo_config=ServoConfig(control_period=0.003), seed=0)


@pytest.mark.parametrize("seed", [0, 5])
def test_scripted_pick_lifts_a_cube(sim, seed):
    info = sim.reset(seed)
    target = info.object_names[seed % 3]
    others = {n: p for n, p in sim.object_positions().items() if n != target}
    result = scripted_pick(sim, target)
    assert all(result.reached), result
    assert result.lift_height >= 0.05, result
    # The fingers stopped on the 4 cm cube (each ~2 cm from centre), not closed on air.
    assert np.all(result.finger_positions > 0.015), result
    # The other objects were not disturbed.
    for name, start in others.items():
        assert np.linalg.norm(sim.object_positions()[name] - start) < 0.01, name


def test_pose_tcp_places_the_tool_by_inverse_kinematics(sim):
    from rt2_sim.scene import READY_POSE

    sim.reset(seed=3)
    _, ready_quat = sim.ee_pose()
    for goal in ([0.45, 0.1, 0.08], [0.55, -0.2, 0.3], [0.35, 0.0, 0.03]):
        assert sim.pose_tcp(np.array(goal))
        position, quat = sim.ee_pose()
        assert np.linalg.norm(position - goal) < 0.005
        assert abs(abs(float(np.dot(quat, ready_quat))) - 1.0) < 1e-3  # same orientation
    assert not sim.pose_tcp(np.array([2.0, 0.0, 0.5]))  # out of reach: reported, not raised
    with pytest.raises(ValueError, match="position"):
        sim.pose_tcp(np.array([np.nan, 0.0, 0.1]))
    with pytest.raises(ValueError, match="joint_positions"):
        sim.pose_arm(np.zeros(6))
    sim.pose_arm(np.asarray(READY_POSE))
    sim.reset(seed=3)  # the servo is back in step with the arm


def test_panda_forward_kinematics_matches_the_simulated_tcp(sim):
    """What a tcp-position model reads in its prompt (rt2_policy.proprioception, computed from
    /joint_states by the policy node and from observation.state in training) is where MuJoCo
    puts the tcp site, over random arm poses: the DH table, the joint zeros of joints 6 and 7
    and the flange/hand/tcp offsets all agree with this scene."""
    from rt2_policy.proprioception import panda_tcp_position

    assert scene.TCP_OFFSET == pytest.approx(0.13)
    rng = np.random.default_rng(3)
    ready = np.asarray(scene.READY_POSE)
    errors = []
    for _ in range(12):
        sim.pose_arm(ready + rng.uniform(-0.6, 0.6, 7))
        position, _ = sim.ee_pose()
        errors.append(np.linalg.norm(panda_tcp_position(sim.joint_positions()[:7],
                                                        scene.TCP_OFFSET) - position))
    assert max(errors) < 1e-3  # metres (joint zeros differ by 1.57 vs pi/2: ~0.2 mm)
    sim.reset()
