"""Scene construction: offline model build, MoveIt names and joint conventions, objects, camera."""

import math

import mujoco
import numpy as np
import pytest

from rt2_sim import scene


@pytest.fixture(scope="module")
def model():
    return scene.build_model(scene.SceneConfig(), np.random.default_rng(0))


def _ready_data(model):
    data = mujoco.MjData(model)
    for name, q in zip(scene.ARM_JOINT_NAMES, scene.READY_POSE, strict=True):
        data.joint(name).qpos[0] = q
    mujoco.mj_forward(model, data)
    return data


def test_joint_and_actuator_names_are_moveits(model):
    names = [model.joint(i).name for i in range(9)]
    assert names == [*scene.ARM_JOINT_NAMES, *scene.FINGER_JOINT_NAMES]
    assert names[:7] == [f"panda_joint{i}" for i in range(1, 8)]
    assert [model.actuator(i).name for i in range(model.nu)] == names
    for i in range(model.nu):
        assert model.actuator_trnid[i, 0] == i  # actuator i drives joint i
    assert model.body(scene.BASE_FRAME).id > 0
    assert model.body(scene.HAND_FRAME).id > 0
    assert model.site(scene.TCP_SITE).id >= 0


def test_joint_limits_are_franka_descriptions(model):
    np.testing.assert_allclose(model.jnt_range[:7], scene.ARM_JOINT_LIMITS)
    np.testing.assert_allclose(model.actuator_ctrlrange[:7], scene.ARM_JOINT_LIMITS)
    np.testing.assert_allclose(model.jnt_range[7:9], [[0.0, 0.04], [0.0, 0.04]])


def test_ready_pose_matches_franka_description_kinematics(model):
    # In franka_description, MoveIt's "ready" pose puts panda_hand at about (0.307, 0, 0.590) in
    # panda_link0, pointing straight down with the fingers opening along y: quaternion
    # (x, y, z, w) = (1, 0, 0, 0). This pins the joint-zero conventions (joint6/joint7 refs).
    data = _ready_data(model)
    base = data.body(scene.BASE_FRAME).xpos
    hand = data.body(scene.HAND_FRAME)
    np.testing.assert_allclose(hand.xpos - base, [0.307, 0.0, 0.590], atol=3e-3)
    assert abs(hand.xquat[1]) == pytest.approx(1.0, abs=1e-3)  # MuJoCo order (w, x, y, z)
    tcp = data.site(scene.TCP_SITE).xpos
    np.testing.assert_allclose(tcp - hand.xpos, [0.0, 0.0, -scene.TCP_OFFSET], atol=2e-3)


def test_gravity_compensation_on_arm_bodies(model):
    for name in [f"panda_link{i}" for i in range(1, 8)] + ["panda_hand", "panda_leftfinger"]:
        assert model.body_gravcomp[model.body(name).id] == pytest.approx(1.0), name
    assert model.body_gravcomp[model.body(scene.BASE_FRAME).id] == 0.0
    assert model.body_gravcomp[model.body("object_0").id] == 0.0


def test_arm_holds_ready_pose_under_gravity(model):
    data = _ready_data(model)
    data.ctrl[:7] = scene.READY_POSE
    data.ctrl[7:9] = scene.FINGER_OPEN_POSITION
    data.qpos[7:9] = scene.FINGER_OPEN_POSITION
    start = data.site(scene.TCP_SITE).xpos.copy()
    for _ in range(500):
        mujoco.mj_step(model, data)
    assert np.linalg.norm(data.site(scene.TCP_SITE).xpos - start) < 1e-3


def test_objects_distinct_colours_on_table_in_workspace(model):
    config = scene.SceneConfig()
    objects = scene.scene_objects(config)
    assert len(objects) >= 3
    assert len({o.colour for o in objects}) == len(objects)
    assert [o.name for o in objects[:3]] == ["red cube", "green cube", "blue cube"]
    rgbs = np.array([model.geom(f"{o.body}_geom").rgba[:3] for o in objects])
    pairwise = np.linalg.norm(rgbs[:, None] - rgbs[None], axis=-1)
    assert np.min(pairwise[~np.eye(len(objects), dtype=bool)]) > 0.3
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    base = data.body(scene.BASE_FRAME).xpos
    for obj in objects:
        p = data.body(obj.body).xpos - base
        assert config.object_x_range[0] <= p[0] <= config.object_x_range[1]
        assert config.object_y_range[0] <= p[1] <= config.object_y_range[1]
        assert p[2] == pytest.approx(config.object_size / 2, abs=1e-6)
        assert model.jnt_type[model.joint(obj.joint).id] == mujoco.mjtJoint.mjJNT_FREE


def test_sample_object_positions_separated_and_seeded():
    config = scene.SceneConfig(num_objects=6)
    a = scene.sample_object_positions(config, np.random.default_rng(7))
    b = scene.sample_object_positions(config, np.random.default_rng(7))
    c = scene.sample_object_positions(config, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.shape == (6, 3)
    d = np.linalg.norm(a[:, None, :2] - a[None, :, :2], axis=-1)
    assert np.min(d[~np.eye(6, dtype=bool)]) >= config.min_object_separation


def test_impossible_placement_raises():
    config = scene.SceneConfig(
        num_objects=6, object_x_range=(0.4, 0.45), object_y_range=(0.0, 0.05)
    )
    with pytest.raises(RuntimeError, match="could not place"):
        scene.sample_object_positions(config, np.random.default_rng(0), max_tries=200)


@pytest.mark.parametrize("shape", ["sphere", "cylinder"])
def test_other_shapes_build(shape):
    config = scene.SceneConfig(object_shape=shape, num_objects=4)
    model = scene.build_model(config, np.random.default_rng(1))
    assert scene.scene_objects(config)[3].name == f"yellow {shape}"
    assert (
        model.geom("object_0_geom").type
        == {
            "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
            "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
        }[shape]
    )


def test_camera_and_cpu_friendly_rendering_defaults(model):
    config = scene.SceneConfig()
    cam = model.camera(config.camera_name)
    assert cam.fovy[0] == pytest.approx(math.degrees(config.camera_fovy))
    assert not np.any(model.light_castshadow)  # shadow_map_size 0: shadows off
    assert model.vis.global_.offwidth >= config.image_width
    assert model.opt.timestep == pytest.approx(0.002)


def test_look_at_quaternion_points_camera_at_target():
    eye, target = np.array([0.0, -1.0, 1.0]), np.array([0.5, 0.0, 0.0])
    quat = scene.look_at_quaternion(eye, target)
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, quat)
    forward = -mat.reshape(3, 3)[:, 2]
    np.testing.assert_allclose(forward, (target - eye) / np.linalg.norm(target - eye), atol=1e-9)
    with pytest.raises(ValueError, match="non-vertical"):
        scene.look_at_quaternion(eye, eye - [0, 0, 1])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_width", 0),
        ("image_height", 224.0),
        ("num_objects", 2),
        ("num_objects", 99),
        ("object_shape", "torus"),
        ("object_size", -0.04),
        ("object_size", float("nan")),
        ("timestep", 0.05),
        ("shadow_map_size", -1),
        ("object_x_range", (0.6, 0.3)),
        ("camera_fovy", 4.0),
        ("camera_eye", (0.0, 0.0)),
        ("min_object_separation", 0.01),
    ],
)
def test_scene_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=f"{field}: expected"):
        scene.SceneConfig(**{field: value})
