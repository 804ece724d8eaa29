"""MuJoCo scene: a Franka Panda on a table, coloured objects, a scene camera and lights.

The Panda comes from the MJCF (Apache-2.0, after github.com/vikashplus/franka) shipped inside the
``gymnasium-robotics`` wheel (``envs/assets/kitchen_franka/franka_assets``); nothing is
downloaded. It is loaded through :class:`mujoco.MjSpec` and edited before compiling:

* joints, bodies and actuators renamed to MoveIt's ``panda_*`` names (``panda_joint1..7``,
  ``panda_finger_joint1/2``, base body ``panda_link0``);
* joint zero offsets of joints 6 and 7 moved (MJCF ``ref``) so that joint angles follow the
  ``franka_description`` URDF convention MoveIt uses (e.g. the "ready" pose
  ``(0, -pi/4, 0, -3pi/4, 0, pi/2, pi/4)``);
* a body ``panda_hand`` (the URDF hand frame, 0.107 m past the flange, yawed -pi/4) carrying
  a site ``tcp`` :data:`TCP_OFFSET` further along its z axis, between the finger pads. This
  model's fingers are 1.75x longer than the real ones (pads 0.093..0.153 m along the hand z
  axis), so the tcp sits deeper than franka_description's ``panda_hand_tcp`` (0.1034 m);
* gravity compensation (body ``gravcomp``) on every moving arm body.

Frames (REP 103/105): the world frame has z up, at floor level. ``panda_link0`` sits on the table
top at ``(0, 0, table_height)`` with the world's orientation; x points away from the robot across
the table. All lengths are metres, angles radians, times seconds.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass

import mujoco
import numpy as np

#: MoveIt / franka_description names of the 7 arm joints, base to flange.
ARM_JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))
#: MoveIt names of the two finger joints (prismatic, metres, 0 = closed, 0.04 = open).
FINGER_JOINT_NAMES = ("panda_finger_joint1", "panda_finger_joint2")
#: franka_description names of the two finger links (bodies carrying the pads).
FINGER_BODY_NAMES = ("panda_leftfinger", "panda_rightfinger")
#: Base body / frame of the arm (REP 105 style robot base frame).
BASE_FRAME = "panda_link0"
#: Hand body / frame (franka_description ``panda_hand``).
HAND_FRAME = "panda_hand"
#: Tool-centre-point site, between the fingertips (franka_description ``panda_hand_tcp``).
TCP_SITE = "tcp"
#: Name of the world frame.
WORLD_FRAME = "world"
#: ROS optical frame of the scene camera (z forward, x right, y down; REP 103 suffix convention).
CAMERA_OPTICAL_FRAME = "scene_camera_optical_frame"
#: Distance of the ``tcp`` site from the ``panda_hand`` origin along the hand z axis, metres.
TCP_OFFSET = 0.13
#: Finger joint travel, metres per finger (franka_description limits).
FINGER_OPEN_POSITION = 0.04
#: Arm joint position limits (franka_description / Franka "robot and interface specifications"),
#: ``(lower, upper)`` radians per joint, MoveIt's joint-angle convention.
ARM_JOINT_LIMITS = (
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
)
#: Arm joint velocity limits (franka_description), radians per second.
ARM_VELOCITY_LIMITS = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
#: Viscous damping of the arm joints, N m s/rad (about critical with kp and armature).
ARM_JOINT_DAMPING = (60.0, 60.0, 60.0, 60.0, 10.0, 10.0, 8.0)
#: MoveIt's "ready" pose of the Panda (panda_moveit_config SRDF), radians.
READY_POSE = (0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4)

#: Object colours: name and linear RGB in [0, 1]. Objects take them in this order.
PALETTE: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("red", (0.85, 0.1, 0.1)),
    ("green", (0.1, 0.7, 0.15)),
    ("blue", (0.1, 0.25, 0.9)),
    ("yellow", (0.95, 0.85, 0.1)),
    ("orange", (1.0, 0.5, 0.05)),
    ("purple", (0.55, 0.15, 0.75)),
)
#: Object shapes known to :func:`build_model`.
OBJECT_SHAPES = ("cube", "sphere", "cylinder")
#: Container shapes, in slot order (``container_0`` is the bowl, ``container_1`` the plate).
CONTAINER_SHAPES = ("bowl", "plate")
#: Bowl: inner radius and wall height; plate: radius and thickness (metres).
BOWL_RADIUS = 0.075
BOWL_WALL_HEIGHT = 0.035
PLATE_RADIUS = 0.08
PLATE_THICKNESS = 0.012
#: Where unused object and container slots wait, ``panda_link0`` frame, metres: under the
#: floor, out of every camera's view (parked free objects neither collide nor fall).
PARKING_ORIGIN = (-1.0, 0.0, -3.0)

# Offsets (radians) between the gymnasium-robotics chain's joint zeros and franka_description's:
# its link6 frame carries an extra 1.57 rad yaw, its link7 frame an extra 0.7854 rad yaw.
_JOINT_REF_OFFSETS = {"panda_joint6": 1.57, "panda_joint7": 0.7854}
# Links of the chain: MJCF name -> MoveIt name.
_BODY_RENAMES = {f"panda0_link{i}": f"panda_link{i}" for i in range(8)} | {
    "panda0_leftfinger": "panda_leftfinger",
    "panda0_rightfinger": "panda_rightfinger",
}
_JOINT_RENAMES = {f"robot:panda0_joint{i}": f"panda_joint{i}" for i in range(1, 8)} | {
    "robot:panda0_finger_joint1": "panda_finger_joint1",
    "robot:panda0_finger_joint2": "panda_finger_joint2",
}
_ACTUATOR_RENAMES = {f"panda0_joint{i}": f"panda_joint{i}" for i in range(1, 8)} | {
    "r_gripper_finger_joint": "panda_finger_joint1",
    "l_gripper_finger_joint": "panda_finger_joint2",
}


@dataclass(frozen=True)
class SceneConfig:
    """Static description of the simulated scene.

    Attributes:
        image_width: scene camera image width, pixels (1..4096).
        image_height: scene camera image height, pixels (1..4096).
        camera_name: MuJoCo name of the scene camera.
        camera_fovy: vertical field of view of the scene camera, radians, in (0, pi).
        camera_eye: camera position in the ``panda_link0`` frame, metres, ``(x, y, z)``.
        camera_target: point the camera looks at, ``panda_link0`` frame, metres.
        num_objects: number of coloured objects on the table, 3..len(PALETTE).
        object_shape: one of :data:`OBJECT_SHAPES` ("cube", "sphere", "cylinder").
        object_size: cube edge / sphere or cylinder diameter (cylinder height too), metres.
        object_mass: mass of each object, kg.
        object_friction: sliding friction coefficient of the objects (MuJoCo ``friction[0]``).
        object_x_range: ``(min, max)`` x of object centres in ``panda_link0``, metres.
        object_y_range: ``(min, max)`` y of object centres in ``panda_link0``, metres.
        min_object_separation: minimum distance between object centres, metres.
        table_height: height of the table top (and of ``panda_link0``) above the floor, metres.
        timestep: physics time step, seconds (MuJoCo ``opt.timestep``), in (0, 0.01].
        shadow_map_size: shadow map resolution, pixels; 0 turns shadows off (fast on CPU).
        render_samples: multisample anti-aliasing samples of the offscreen buffer (0 = off).
        num_containers: container slots (0, or 2: a bowl ``container_0`` and a plate
            ``container_1``), mocap bodies that :meth:`ArmSimulation.reset_episode` places and
            colours; parked out of view until then.

    Raises:
        ValueError: "<field>: expected X, got Y" on any invalid value.
    """

    image_width: int = 224
    image_height: int = 224
    camera_name: str = "scene_camera"
    camera_fovy: float = math.radians(58.0)
    camera_eye: tuple[float, float, float] = (-0.05, -0.45, 0.8)
    camera_target: tuple[float, float, float] = (0.5, 0.05, 0.1)
    num_objects: int = 3
    object_shape: str = "cube"
    object_size: float = 0.04
    object_mass: float = 0.05
    object_friction: float = 1.0
    object_x_range: tuple[float, float] = (0.35, 0.6)
    object_y_range: tuple[float, float] = (-0.2, 0.2)
    min_object_separation: float = 0.08
    table_height: float = 0.4
    timestep: float = 0.002
    shadow_map_size: int = 0
    render_samples: int = 0
    num_containers: int = 0

    def __post_init__(self) -> None:
        for name in ("image_width", "image_height"):
            value = getattr(self, name)
            if not _is_int(value) or not 1 <= value <= 4096:
                raise ValueError(f"{name}: expected an int in [1, 4096], got {value!r}")
        if not isinstance(self.camera_name, str) or not self.camera_name:
            raise ValueError(f"camera_name: expected a non-empty string, got {self.camera_name!r}")
        if not _is_finite(self.camera_fovy) or not 0.0 < self.camera_fovy < math.pi:
            raise ValueError(f"camera_fovy: expected radians in (0, pi), got {self.camera_fovy!r}")
        for name in ("camera_eye", "camera_target"):
            _check_vector(name, getattr(self, name), 3)
        if np.allclose(self.camera_eye, self.camera_target):
            raise ValueError(
                "camera_target: expected a point distinct from camera_eye, "
                f"got {self.camera_target}"
            )
        if not _is_int(self.num_objects) or not 3 <= self.num_objects <= len(PALETTE):
            raise ValueError(
                f"num_objects: expected an int in [3, {len(PALETTE)}], got {self.num_objects!r}"
            )
        if self.object_shape not in OBJECT_SHAPES:
            raise ValueError(
                f"object_shape: expected one of {OBJECT_SHAPES}, got {self.object_shape!r}"
            )
        for name, hi in (
            ("object_size", 0.1),
            ("object_mass", 2.0),
            ("object_friction", 5.0),
            ("table_height", 2.0),
            ("min_object_separation", 1.0),
        ):
            value = getattr(self, name)
            if not _is_finite(value) or not 0.0 < value <= hi:
                raise ValueError(f"{name}: expected a number in (0, {hi}], got {value!r}")
        for name in ("object_x_range", "object_y_range"):
            lo, hi = _check_vector(name, getattr(self, name), 2)
            if not lo < hi:
                raise ValueError(f"{name}: expected (min, max) with min < max, got {(lo, hi)}")
        if self.min_object_separation < self.object_size:
            raise ValueError(
                "min_object_separation: expected >= object_size "
                f"({self.object_size}), got {self.min_object_separation}"
            )
        if not _is_finite(self.timestep) or not 0.0 < self.timestep <= 0.01:
            raise ValueError(f"timestep: expected seconds in (0, 0.01], got {self.timestep!r}")
        if not _is_int(self.shadow_map_size) or not 0 <= self.shadow_map_size <= 8192:
            raise ValueError(
                f"shadow_map_size: expected an int in [0, 8192], got {self.shadow_map_size!r}"
            )
        if self.num_containers not in (0, len(CONTAINER_SHAPES)):
            raise ValueError(
                f"num_containers: expected 0 or {len(CONTAINER_SHAPES)}, "
                f"got {self.num_containers!r}"
            )
        if not _is_int(self.render_samples) or not 0 <= self.render_samples <= 16:
            raise ValueError(
                f"render_samples: expected an int in [0, 16], got {self.render_samples!r}"
            )


@dataclass(frozen=True)
class SceneObject:
    """One coloured object of the scene.

    Attributes:
        name: human name used in instructions, e.g. ``"red cube"``.
        colour: colour name, e.g. ``"red"``.
        rgb: linear RGB in [0, 1].
        body: MuJoCo body name (``"object_<i>"``); its free joint is ``"object_<i>_joint"``.
    """

    name: str
    colour: str
    rgb: tuple[float, float, float]
    body: str

    @property
    def joint(self) -> str:
        """MuJoCo name of the object's free joint."""
        return f"{self.body}_joint"


def scene_objects(config: SceneConfig) -> tuple[SceneObject, ...]:
    """The objects :func:`build_model` creates for ``config``, in body order.

    Returns:
        ``config.num_objects`` objects with distinct colours taken from :data:`PALETTE` in order.
    """
    return tuple(
        SceneObject(
            name=f"{colour} {config.object_shape}", colour=colour, rgb=rgb, body=f"object_{i}"
        )
        for i, (colour, rgb) in enumerate(PALETTE[: config.num_objects])
    )


def base_position(config: SceneConfig) -> np.ndarray:
    """Position of ``panda_link0`` in the world frame, shape (3,), float64, metres."""
    return np.array([0.0, 0.0, config.table_height])


def sample_object_positions(
    config: SceneConfig, rng: np.random.Generator, max_tries: int = 10_000
) -> np.ndarray:
    """Draw resting positions for the objects, uniformly in the workspace rectangle.

    Centres lie in ``object_x_range`` x ``object_y_range`` (``panda_link0`` frame), at least
    ``min_object_separation`` apart, resting on the table top.

    Args:
        config: the scene.
        rng: random generator (the only source of randomness).
        max_tries: rejection-sampling budget.

    Returns:
        Object centres in the world frame, shape ``(num_objects, 3)``, float64, metres.

    Raises:
        RuntimeError: if no separated placement is found within ``max_tries`` draws.
    """
    n = config.num_objects
    xy = np.empty((0, 2))
    for _ in range(max_tries):
        candidate = np.array(
            [rng.uniform(*config.object_x_range), rng.uniform(*config.object_y_range)]
        )
        if xy.shape[0] == 0 or np.min(np.linalg.norm(xy - candidate, axis=1)) >= (
            config.min_object_separation
        ):
            xy = np.vstack([xy, candidate])
            if xy.shape[0] == n:
                z = np.full((n, 1), config.table_height + config.object_size / 2)
                return np.hstack([xy, z])
    raise RuntimeError(
        f"could not place {n} objects {config.min_object_separation} m apart in "
        f"x {config.object_x_range} y {config.object_y_range} after {max_tries} draws"
    )


def panda_asset_dir() -> pathlib.Path:
    """Directory of the Panda MJCF in the installed ``gymnasium-robotics`` wheel.

    Raises:
        FileNotFoundError: if the package or its ``chain.xml`` is missing.
    """
    import importlib.util

    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("gymnasium_robotics: expected the package installed, got none")
    path = pathlib.Path(spec.origin).parent / "envs" / "assets" / "kitchen_franka" / "franka_assets"
    if not (path / "chain.xml").is_file():
        raise FileNotFoundError(f"Panda MJCF: expected {path / 'chain.xml'}, got no such file")
    return path


def look_at_quaternion(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Orientation of a MuJoCo camera at ``eye`` looking at ``target`` with world z up.

    MuJoCo cameras look along their -z axis with y up (OpenGL convention).

    Returns:
        Quaternion ``(w, x, y, z)`` (MuJoCo order), shape (4,), float64.

    Raises:
        ValueError: if the viewing direction is vertical (up vector undefined).
    """
    forward = np.asarray(target, float) - np.asarray(eye, float)
    forward /= np.linalg.norm(forward)
    z_axis = -forward
    x_axis = np.cross([0.0, 0.0, 1.0], z_axis)
    if np.linalg.norm(x_axis) < 1e-6:
        raise ValueError(f"camera direction: expected non-vertical, got {forward}")
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([x_axis, y_axis, z_axis]).ravel())
    return quat


def build_spec(config: SceneConfig, rng: np.random.Generator | None = None) -> mujoco.MjSpec:
    """Build the (uncompiled) scene specification; see :func:`build_model`."""
    rng = np.random.default_rng() if rng is None else rng
    spec = _load_panda_spec()
    _edit_panda(spec, config)
    _add_environment(spec, config)
    _add_objects(spec, config, sample_object_positions(config, rng))
    _add_containers(spec, config)
    return spec


def build_model(config: SceneConfig, rng: np.random.Generator | None = None) -> mujoco.MjModel:
    """Compile the scene: Panda on a table, coloured free objects, scene camera, lights.

    Args:
        config: the scene description.
        rng: generator for the initial object placement (a fresh unseeded one if None); the
            placement is stored as the model's reference configuration ``qpos0``.

    Returns:
        The compiled model. Arm and finger joints and actuators carry MoveIt's names
        (:data:`ARM_JOINT_NAMES`, :data:`FINGER_JOINT_NAMES`); actuators are position servos in
        the same order (radians / metres). Objects are bodies ``object_<i>`` with free joints.

    Raises:
        FileNotFoundError: if the gymnasium-robotics Panda assets are not installed.
        ValueError: if MuJoCo rejects the specification.
    """
    return build_spec(config, rng).compile()


def _load_panda_spec() -> mujoco.MjSpec:
    asset_dir = panda_asset_dir()
    xml = f"""<mujoco model="rt2_panda_scene">
  <include file="{asset_dir / "assets.xml"}"/>
  <worldbody><include file="{asset_dir / "chain.xml"}"/></worldbody>
  <include file="{asset_dir / "actuator.xml"}"/>
</mujoco>"""
    spec = mujoco.MjSpec.from_string(xml)
    # The assets' meshdir is relative to a model file we do not have: point meshes at it.
    spec.meshdir = ""
    mesh_root = asset_dir / "meshes"
    for mesh in spec.meshes:
        path = pathlib.Path(mesh.file)
        if not path.is_file():
            relative = path.relative_to(asset_dir) if path.is_relative_to(asset_dir) else path
            path = mesh_root / relative
        mesh.file = str(path)
    return spec


def _edit_panda(spec: mujoco.MjSpec, config: SceneConfig) -> None:
    for old, new in _BODY_RENAMES.items():
        spec.body(old).name = new
    for old, new in _JOINT_RENAMES.items():
        spec.joint(old).name = new
    for old, new in _ACTUATOR_RENAMES.items():
        actuator = spec.actuator(old)
        actuator.name = new
        actuator.target = _JOINT_RENAMES[actuator.target]
    for joint_name, offset in _JOINT_REF_OFFSETS.items():
        spec.joint(joint_name).ref = offset
    for name, limits in zip(ARM_JOINT_NAMES, ARM_JOINT_LIMITS, strict=True):
        spec.joint(name).range = limits
        # Position targets never leave the joint range.
        spec.actuator(name).ctrlrange = limits
    # About critical damping for the position servos (kp 870 / 120 N m/rad), with rotor
    # armature; the kitchen model's 100 / 10 N m s/rad overdamp into ~0.1 s of lag.
    # ArmSimulation feeds the servo's joint velocity forward (damping / kp) to cancel the lag.
    for name, damping in zip(ARM_JOINT_NAMES, ARM_JOINT_DAMPING, strict=True):
        joint = spec.joint(name)
        joint.damping = [damping, 0.0, 0.0]
        joint.armature = 0.1
    for name in FINGER_JOINT_NAMES:
        joint = spec.joint(name)
        joint.damping = [10.0, 0.0, 0.0]
        joint.armature = 0.1
    spec.delete(spec.site("end_effector"))

    base = spec.body(BASE_FRAME)
    base.pos = base_position(config)
    link7 = spec.body("panda_link7")
    hand = link7.add_body(
        name=HAND_FRAME, pos=[0.0, 0.0, 0.107], quat=[0.92387953, 0.0, 0.0, -0.38268343]
    )
    hand.add_site(name=TCP_SITE, pos=[0.0, 0.0, TCP_OFFSET], size=[0.005, 0.0, 0.0], group=4)
    for body in spec.bodies:
        if body.name.startswith("panda_") and body.name != BASE_FRAME:
            body.gravcomp = 1.0
    # Finger pads: more friction for a firm grasp (the finger class already sets condim 6).
    for body_name in FINGER_BODY_NAMES:
        for geom in spec.body(body_name).geoms:
            if geom.type != mujoco.mjtGeom.mjGEOM_MESH:
                geom.friction = [1.5, 0.01, 0.0001]


def _add_environment(spec: mujoco.MjSpec, config: SceneConfig) -> None:
    spec.option.timestep = config.timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    spec.visual.quality.shadowsize = max(config.shadow_map_size, 1)
    spec.visual.quality.offsamples = config.render_samples
    spec.visual.global_.offwidth = max(640, config.image_width)
    spec.visual.global_.offheight = max(480, config.image_height)
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.3, 0.3, 0.3]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]
    shadows = config.shadow_map_size > 0

    world = spec.worldbody
    world.add_geom(
        name="floor",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[3.0, 3.0, 0.05],
        rgba=[0.35, 0.37, 0.4, 1.0],
    )
    h = config.table_height
    world.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        pos=[0.35, 0.0, h / 2],
        size=[0.65, 0.75, h / 2],
        rgba=[0.72, 0.6, 0.45, 1.0],
        friction=[1.0, 0.005, 0.0001],
    )
    world.add_light(
        name="key_light",
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
        pos=[0.5, -0.5, h + 2.0],
        dir=[-0.2, 0.3, -1.0],
        diffuse=[0.6, 0.6, 0.6],
        specular=[0.2, 0.2, 0.2],
        castshadow=shadows,
    )
    world.add_light(
        name="fill_light",
        type=mujoco.mjtLightType.mjLIGHT_SPOT,
        pos=[1.2, 0.8, h + 1.5],
        dir=[-0.6, -0.5, -1.0],
        diffuse=[0.3, 0.3, 0.3],
        specular=[0.0, 0.0, 0.0],
        cutoff=60.0,
        castshadow=False,
    )
    offset = base_position(config)
    eye = np.asarray(config.camera_eye, float) + offset
    target = np.asarray(config.camera_target, float) + offset
    world.add_camera(
        name=config.camera_name,
        pos=eye,
        quat=look_at_quaternion(eye, target),
        fovy=math.degrees(config.camera_fovy),
    )


def _add_objects(spec: mujoco.MjSpec, config: SceneConfig, positions: np.ndarray) -> None:
    half = config.object_size / 2
    geom_type, size = {
        "cube": (mujoco.mjtGeom.mjGEOM_BOX, [half, half, half]),
        "sphere": (mujoco.mjtGeom.mjGEOM_SPHERE, [half, 0.0, 0.0]),
        "cylinder": (mujoco.mjtGeom.mjGEOM_CYLINDER, [half, half, 0.0]),
    }[config.object_shape]
    for obj, position in zip(scene_objects(config), positions, strict=True):
        body = spec.worldbody.add_body(name=obj.body, pos=position)
        body.add_freejoint(name=obj.joint)
        body.add_geom(
            name=f"{obj.body}_geom",
            type=geom_type,
            size=size,
            rgba=[*obj.rgb, 1.0],
            mass=config.object_mass,
            friction=[config.object_friction, 0.01, 0.0001],
            condim=4,
        )


def parking_position(config: SceneConfig, slot: int) -> np.ndarray:
    """World position where slot ``slot`` waits when unused, shape (3,), metres."""
    return base_position(config) + np.array(PARKING_ORIGIN) + np.array([0.0, 0.3 * slot, 0.0])


def _add_containers(spec: mujoco.MjSpec, config: SceneConfig) -> None:
    """Bowl and plate as mocap bodies (static, teleported per episode), parked at first."""
    if not config.num_containers:
        return
    world = spec.worldbody
    for i, shape in enumerate(CONTAINER_SHAPES):
        body = world.add_body(
            name=f"container_{i}", pos=parking_position(config, 10 + i), mocap=True
        )
        rgba = [0.9, 0.9, 0.9, 1.0]
        if shape == "bowl":
            body.add_geom(name=f"container_{i}_geom", type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                          size=[BOWL_RADIUS + 0.005, 0.004, 0.0], pos=[0, 0, 0.004], rgba=rgba)
            n = 16
            wall = 2 * math.pi * (BOWL_RADIUS + 0.004) / n / 2 + 0.002
            for k in range(n):
                angle = 2 * math.pi * k / n
                body.add_geom(
                    name=f"container_{i}_wall_{k}",
                    type=mujoco.mjtGeom.mjGEOM_BOX,
                    size=[0.004, wall, BOWL_WALL_HEIGHT / 2],
                    pos=[(BOWL_RADIUS + 0.004) * math.cos(angle),
                         (BOWL_RADIUS + 0.004) * math.sin(angle), BOWL_WALL_HEIGHT / 2],
                    quat=[math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)],
                    rgba=rgba,
                )
        else:
            body.add_geom(name=f"container_{i}_geom", type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                          size=[PLATE_RADIUS, PLATE_THICKNESS / 2, 0.0],
                          pos=[0, 0, PLATE_THICKNESS / 2], rgba=rgba)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_finite(value: object) -> bool:
    return (
        isinstance(value, int | float | np.number)
        and not isinstance(value, bool)
        and (math.isfinite(float(value)))
    )


def _check_vector(name: str, value: object, size: int) -> tuple[float, ...]:
    try:
        items = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {size} finite numbers, got {value!r}") from None
    if len(items) != size or not all(math.isfinite(v) for v in items):
        raise ValueError(f"{name}: expected {size} finite numbers, got {value!r}")
    return items
