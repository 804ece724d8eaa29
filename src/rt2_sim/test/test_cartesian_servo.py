"""Cartesian servo: tracking in physics, frames, halting on stale/invalid commands, limits."""

import mujoco
import numpy as np
import pytest

from rt2_sim import scene
from rt2_sim.cartesian_servo import CartesianServo, ServoConfig, ServoStatus
from rt2_sim.simulation import ArmSimulation

# Tolerances. Measured with the defaults (lambda 0.05, 100 Hz servo, 500 Hz physics): linear
# tracking RMS ~1.1-1.6 mm, rotational RMS ~0.004 rad.
LINEAR_RMS_TOLERANCE = 0.005  # m
ANGULAR_RMS_TOLERANCE = 0.02  # rad


@pytest.fixture(scope="module")
def sim():
    simulation = ArmSimulation(seed=0)
    yield simulation
    simulation.close()


@pytest.fixture(scope="module")
def model():
    return scene.build_model(scene.SceneConfig(), np.random.default_rng(0))


def _rotation(quat_xyzw):
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, np.array([quat_xyzw[3], *quat_xyzw[:3]]))
    return mat.reshape(3, 3)


def _angle_between(r_a, r_b):
    return float(np.arccos(np.clip((np.trace(r_a @ r_b.T) - 1.0) / 2.0, -1.0, 1.0)))


def _rot_about(axis, angle):
    quat = np.zeros(4)
    mujoco.mju_axisAngle2Quat(quat, np.asarray(axis, float) / np.linalg.norm(axis), angle)
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, quat)
    return mat.reshape(3, 3)


def _stream(sim, linear, angular, frame, duration, rate=100.0):
    """Stream a constant twist at ``rate``; return per-step (elapsed, tcp position, rotation)."""
    samples = []
    start = sim.time
    while sim.time < start + duration - 1e-9:
        sim.command_twist(linear, angular, frame, sim.time)
        sim.step(1.0 / rate)
        position, quat = sim.ee_pose()
        samples.append((sim.time - start, position, _rotation(quat)))
    return samples


@pytest.mark.parametrize(
    "linear", [(0.05, 0.0, 0.0), (0.0, -0.05, 0.0), (0.0, 0.0, -0.05), (0.03, 0.03, 0.03)]
)
def test_tracks_linear_twist_in_base_frame(sim, linear):
    sim.reset(0)
    sim.step(0.1)
    p0, q0 = sim.ee_pose()
    samples = _stream(sim, np.array(linear), np.zeros(3), "panda_link0", 1.0)
    errors = [np.linalg.norm(p - (p0 + np.array(linear) * t)) for t, p, _ in samples]
    rms = float(np.sqrt(np.mean(np.square(errors))))
    assert rms < LINEAR_RMS_TOLERANCE, f"RMS tracking error {rms * 1e3:.2f} mm"
    # It really moved (5 cm), and the orientation was held.
    assert np.linalg.norm(samples[-1][1] - p0) > 0.04
    assert _angle_between(samples[-1][2], _rotation(q0)) < 0.02


@pytest.mark.parametrize(
    ("frame", "angular"),
    [
        ("panda_link0", (0.0, 0.0, 0.3)),
        ("panda_link0", (0.3, 0.0, 0.0)),
        ("panda_hand", (0.2, 0.2, 0.0)),
    ],
)
def test_tracks_rotational_twist(sim, frame, angular):
    sim.reset(0)
    sim.step(0.1)
    p0, q0 = sim.ee_pose()
    r0 = _rotation(q0)
    w = np.array(angular)
    w_base = w if frame == "panda_link0" else r0 @ w  # hand frame == tcp orientation
    samples = _stream(sim, np.zeros(3), w, frame, 1.0)
    errors = [
        _angle_between(r, _rot_about(w_base, np.linalg.norm(w_base) * t) @ r0)
        for t, _, r in samples
    ]
    rms = float(np.sqrt(np.mean(np.square(errors))))
    assert rms < ANGULAR_RMS_TOLERANCE, f"RMS orientation error {rms:.4f} rad"
    assert _angle_between(samples[-1][2], r0) > 0.25  # it rotated ~0.3 rad
    # Pure rotation about the tcp: the tcp stays put.
    assert max(np.linalg.norm(p - p0) for _, p, _ in samples) < 0.005


def test_tool_frame_twist_is_rotated_to_world(sim):
    # In the ready pose the hand's z axis points down: +z in panda_hand moves the tcp down.
    sim.reset(0)
    sim.step(0.1)
    p0, _ = sim.ee_pose()
    _stream(sim, np.array([0.0, 0.0, 0.05]), np.zeros(3), "panda_hand", 0.5)
    delta = sim.ee_pose()[0] - p0
    assert delta[2] < -0.02
    assert np.linalg.norm(delta[:2]) < 0.004


def test_world_frame_and_empty_frame_match_base_axes(sim):
    for frame in ("world", ""):
        sim.reset(0)
        p0, _ = sim.ee_pose()
        _stream(sim, np.array([0.0, 0.05, 0.0]), np.zeros(3), frame, 0.5)
        delta = sim.ee_pose()[0] - p0
        assert delta[1] > 0.02, frame
        assert abs(delta[0]) < 0.004 and abs(delta[2]) < 0.004


def test_halts_when_commands_go_stale(sim):
    sim.reset(0)
    sim.step(0.1)
    p0, _ = sim.ee_pose()
    sim.command_twist([0.05, 0.0, 0.0], [0.0, 0.0, 0.0], "panda_link0", sim.time)
    sim.step(0.3)
    p_mid, _ = sim.ee_pose()
    assert sim.servo_status is ServoStatus.HALT_STALE_COMMAND
    # Executed only until the 0.1 s timeout: about 5 mm, not the 15 mm of 0.3 s.
    moved = np.linalg.norm(p_mid - p0)
    assert 0.002 < moved < 0.008, moved
    targets = sim.servo.joint_targets
    sim.step(0.5)
    np.testing.assert_array_equal(sim.servo.joint_targets, targets)
    assert np.linalg.norm(sim.ee_pose()[0] - p_mid) < 5e-4


def test_old_stamp_never_moves(sim):
    sim.reset(0)
    sim.step(0.5)
    p0, _ = sim.ee_pose()
    targets = sim.servo.joint_targets
    sim.command_twist([0.05, 0.0, 0.0], [0.0, 0.0, 0.0], "panda_link0", sim.time - 0.2)
    sim.step(0.2)
    np.testing.assert_array_equal(sim.servo.joint_targets, targets)
    assert np.linalg.norm(sim.ee_pose()[0] - p0) < 5e-4


@pytest.mark.parametrize(
    ("linear", "frame", "match"),
    [
        ((0.05, 0.0, 0.0), "base_link", "panda_link0"),
        ((float("nan"), 0.0, 0.0), "panda_link0", "finite"),
        ((0.0, float("inf"), 0.0), "panda_link0", "finite"),
        ((0.05, 0.0), "panda_link0", "shape"),
    ],
)
def test_rejects_invalid_commands_and_halts(sim, linear, frame, match):
    sim.reset(0)
    sim.command_twist([0.05, 0.0, 0.0], [0.0, 0.0, 0.0], "panda_link0", sim.time)
    sim.step(0.05)
    with pytest.raises(ValueError, match=match):
        sim.command_twist(linear, [0.0, 0.0, 0.0], frame, sim.time)
    assert sim.servo_status is ServoStatus.HALT_INVALID_COMMAND
    targets = sim.servo.joint_targets
    sim.step(0.05)  # the earlier, still-fresh command was dropped too
    np.testing.assert_array_equal(sim.servo.joint_targets, targets)
    assert sim.servo_status is ServoStatus.HALT_INVALID_COMMAND


def test_unknown_frame_error_lists_valid_frames(model):
    servo = CartesianServo(model)
    with pytest.raises(ValueError) as info:
        servo.set_command([0, 0, 0], [0, 0, 0], "camera", 0.0)
    for frame in ("panda_link0", "panda_hand", "tcp", "world"):
        assert frame in str(info.value)


def test_joint_position_limits_respected(model):
    # Spin about the tool axis far past joint 7's range: targets stop at limit - margin.
    config = ServoConfig(max_angular_speed=2.0)
    servo = CartesianServo(model, config)
    servo.reset(scene.READY_POSE)
    upper = np.array(scene.ARM_JOINT_LIMITS)[:, 1] - config.joint_limit_margin
    lower = np.array(scene.ARM_JOINT_LIMITS)[:, 0] + config.joint_limit_margin
    statuses = set()
    for k in range(600):  # 6 s at 1.5 rad/s
        now = k * config.control_period
        servo.set_command([0, 0, 0], [0, 0, 1.5], "panda_hand", now)
        q = servo.update(now)
        statuses.add(servo.status)
        assert np.all(q <= upper + 1e-12) and np.all(q >= lower - 1e-12)
    assert ServoStatus.JOINT_BOUND in statuses
    assert q[6] == pytest.approx(lower[6]) or q[6] == pytest.approx(upper[6])


def test_joint_velocity_limits_respected(model):
    limits = (0.2,) * 7
    config = ServoConfig(joint_velocity_limits=limits, max_linear_speed=1.0)
    servo = CartesianServo(model, config)
    servo.reset(scene.READY_POSE)
    previous = servo.joint_targets
    servo.set_command([1.0, 0, 0], [0, 0, 0], "panda_link0", 0.0)
    q = servo.update(0.0)
    assert servo.status is ServoStatus.VELOCITY_LIMITED
    speed = np.abs(q - previous) / config.control_period
    assert np.max(speed / np.array(limits)) == pytest.approx(1.0)


def test_speed_caps(model):
    servo = CartesianServo(model, ServoConfig(max_linear_speed=0.1, max_angular_speed=0.5))
    command = servo.set_command([3.0, 4.0, 0.0], [0.0, 0.0, 2.0], "panda_link0", 0.0)
    assert np.linalg.norm(command.linear) == pytest.approx(0.1)
    assert np.linalg.norm(command.angular) == pytest.approx(0.5)


def test_no_command_holds_targets(model):
    servo = CartesianServo(model)
    servo.reset(scene.READY_POSE)
    np.testing.assert_array_equal(servo.update(5.0), np.array(scene.READY_POSE))
    assert servo.status is ServoStatus.HALT_STALE_COMMAND


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("damping", -0.1),
        ("control_period", 0.0),
        ("incoming_command_timeout", float("nan")),
        ("max_linear_speed", 0.0),
        ("joint_limit_margin", 1.0),
        ("joint_velocity_limits", (1.0,) * 6),
        ("default_command_frame", "base_link"),
    ],
)
def test_servo_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=f"{field}: expected"):
        ServoConfig(**{field: value})
