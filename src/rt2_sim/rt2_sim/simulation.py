"""The simulated arm: MuJoCo physics, the Cartesian servo, the gripper and the scene camera.

:class:`ArmSimulation` is the pure-Python core the ROS node wraps. It is not thread-safe: the
caller serialises access (the node holds a lock around every call). Rendering uses an offscreen
OpenGL context (``MUJOCO_GL=egl`` or ``osmesa``), which is current in one thread only: call the
rendering methods and :meth:`ArmSimulation.close` from a single thread.

Units and frames follow REP 103/105: metres, radians, seconds; ``world`` has z up at floor
level, ``panda_link0`` is the arm base on the table top. Quaternions are returned in ROS order
``(x, y, z, w)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from rt2_sim.cartesian_servo import CartesianServo, ServoConfig, ServoStatus
from rt2_sim.scene import (
    ARM_JOINT_NAMES,
    BASE_FRAME,
    CAMERA_OPTICAL_FRAME,
    CONTAINER_SHAPES,
    FINGER_BODY_NAMES,
    FINGER_JOINT_NAMES,
    FINGER_OPEN_POSITION,
    READY_POSE,
    TCP_SITE,
    SceneConfig,
    SceneObject,
    base_position,
    build_model,
    parking_position,
    sample_object_positions,
    scene_objects,
)


@dataclass(frozen=True, eq=False)  # holds numpy arrays: compare fields explicitly
class SceneInfo:
    """What :meth:`ArmSimulation.reset` laid out.

    Attributes:
        seed: the seed the object placement was drawn with.
        object_names: e.g. ``("red cube", "green cube", "blue cube")``.
        colours: linear RGB in [0, 1] of each object, same order.
        initial_positions: object centres, world frame, shape (N, 3), float64, metres
            (read-only array).
        description: one line describing the layout, e.g. for logs or the ResetScene service.
    """

    seed: int
    object_names: tuple[str, ...]
    colours: tuple[tuple[float, float, float], ...]
    initial_positions: np.ndarray
    description: str


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole model of the scene camera (``sensor_msgs/CameraInfo`` conventions).

    Square pixels, principal point at the image centre, no distortion. Pixel centres sit at
    integer coordinates (OpenCV / ROS ``image_geometry``), so ``cx = (width - 1) / 2``.

    Attributes:
        fx: focal length along x, pixels.
        fy: focal length along y, pixels (``(height / 2) / tan(fovy / 2)``).
        cx: principal point x, pixels.
        cy: principal point y, pixels.
        width: image width, pixels.
        height: image height, pixels.
        frame_id: optical frame of the camera (z forward, x right, y down).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    frame_id: str = CAMERA_OPTICAL_FRAME

    @property
    def k(self) -> tuple[float, ...]:
        """Row-major 3x3 intrinsic matrix ``K`` (CameraInfo ``k``)."""
        return (self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0)

    @property
    def p(self) -> tuple[float, ...]:
        """Row-major 3x4 projection matrix ``P`` (CameraInfo ``p``, monocular: no Tx, Ty)."""
        return (self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0)


class ArmSimulation:
    """A Panda on a table with coloured objects, driven by twist and gripper commands.

    Physics runs at ``1 / scene_config.timestep`` (500 Hz by default), the servo every
    ``servo_config.control_period`` (100 Hz by default, must be a whole number of physics
    steps).

    Args:
        scene_config: the scene (defaults: 224x224 camera, three 4 cm cubes).
        servo_config: the Cartesian servo parameters.
        seed: seed of the generator that draws object placements for ``reset(None)``.

    Raises:
        ValueError: if the control period is not a multiple of the physics time step.
    """

    def __init__(
        self,
        scene_config: SceneConfig | None = None,
        servo_config: ServoConfig | None = None,
        seed: int | None = None,
    ) -> None:
        self._scene_config = SceneConfig() if scene_config is None else scene_config
        servo_config = ServoConfig() if servo_config is None else servo_config
        ratio = servo_config.control_period / self._scene_config.timestep
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError(
                "control_period: expected a whole multiple of the physics timestep "
                f"{self._scene_config.timestep} s, got {servo_config.control_period} s"
            )
        self._decimation = round(ratio)
        self._rng = np.random.default_rng(seed)
        self._model = build_model(self._scene_config, np.random.default_rng(seed))
        self._data = mujoco.MjData(self._model)
        self._servo = CartesianServo(self._model, servo_config)
        self._objects = scene_objects(self._scene_config)
        model = self._model
        joints = [model.joint(name) for name in (*ARM_JOINT_NAMES, *FINGER_JOINT_NAMES)]
        self._qpos_adr = np.array([int(j.qposadr[0]) for j in joints])
        self._dof_adr = np.array([int(j.dofadr[0]) for j in joints])
        self._arm_joint_ids = np.array([int(j.id) for j in joints[:7]])
        self._arm_ctrl = np.array([model.actuator(name).id for name in ARM_JOINT_NAMES])
        # Velocity feedforward through the position actuators: force = kp (ctrl - q) - c qdot
        # tracks q_t + qdot_t t without lag when ctrl = q_t + (c / kp) qdot_t.
        self._feedforward = (
            model.dof_damping[self._dof_adr[:7]] / model.actuator_gainprm[self._arm_ctrl, 0]
        )
        self._ctrl_range = model.actuator_ctrlrange[self._arm_ctrl].copy()
        self._finger_ctrl = np.array([model.actuator(name).id for name in FINGER_JOINT_NAMES])
        self._object_qpos = [int(model.joint(o.joint).qposadr[0]) for o in self._objects]
        self._object_body = [model.body(o.body).id for o in self._objects]
        self._base_id = model.body(BASE_FRAME).id
        self._tcp_id = model.site(TCP_SITE).id
        self._finger_bodies = tuple(model.body(name).id for name in FINGER_BODY_NAMES)
        self._camera_id = model.camera(self._scene_config.camera_name).id
        self._renderer: mujoco.Renderer | None = None
        self._gripper = 0.0
        self._steps = 0
        self._target_time = 0.0
        self._info: SceneInfo | None = None
        self._default_objects = (self._objects, list(self._object_qpos), list(self._object_body))
        self._slot_geoms = [model.geom(f"object_{i}_geom").id
                            for i in range(self._scene_config.num_objects)]
        self._geom_defaults = {
            name: getattr(model, name)[self._slot_geoms].copy()
            for name in ("geom_type", "geom_size", "geom_rgba", "geom_rbound", "geom_aabb",
                         "geom_contype", "geom_conaffinity")
        }
        self._slot_bodies = [model.body(f"object_{i}").id
                             for i in range(self._scene_config.num_objects)]
        self._gravcomp_defaults = model.body_gravcomp[self._slot_bodies].copy()
        self._table_geom = model.geom("table").id
        self._floor_geom = model.geom("floor").id
        self._key_light = model.light("key_light").id
        self._background_defaults = (
            model.geom_rgba[self._table_geom].copy(), model.geom_rgba[self._floor_geom].copy(),
            model.light_dir[self._key_light].copy(), model.light_diffuse[self._key_light].copy(),
        )
        self._episode = None
        self.reset(None)

    # ------------------------------------------------------------------ properties
    @property
    def model(self) -> mujoco.MjModel:
        """The compiled MuJoCo model (read it, do not edit it)."""
        return self._model

    @property
    def data(self) -> mujoco.MjData:
        """The live MuJoCo state (privileged access for tests and scripted experts)."""
        return self._data

    @property
    def scene_config(self) -> SceneConfig:
        """The scene description."""
        return self._scene_config

    @property
    def servo(self) -> CartesianServo:
        """The Cartesian servo (its status and joint targets)."""
        return self._servo

    @property
    def servo_status(self) -> ServoStatus:
        """Status of the servo after its last update."""
        return self._servo.status

    @property
    def scene_info(self) -> SceneInfo:
        """Layout drawn by the last :meth:`reset`."""
        assert self._info is not None
        return self._info

    @property
    def time(self) -> float:
        """Simulation time, seconds; monotonic across resets."""
        return float(self._data.time)

    @property
    def joint_names(self) -> tuple[str, ...]:
        """MoveIt names of the 7 arm joints then the 2 finger joints."""
        return (*ARM_JOINT_NAMES, *FINGER_JOINT_NAMES)

    @property
    def gripper_command(self) -> float:
        """Last gripper closure command, 0.0 (open) .. 1.0 (closed)."""
        return self._gripper

    # ------------------------------------------------------------------ commands
    def reset(self, seed: int | None = None) -> SceneInfo:
        """Arm to MoveIt's "ready" pose, gripper open, objects re-placed at random.

        Time keeps running (it is not set back to zero); pending twist commands are dropped.

        Args:
            seed: placement seed; None draws one from the simulation's own generator.

        Returns:
            The new layout.

        Raises:
            ValueError: if ``seed`` is negative or not an int.
        """
        if seed is None:
            seed = int(self._rng.integers(0, 2**31 - 1))
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed: expected a non-negative int or None, got {seed!r}")
        self._restore_default_scene()
        positions = sample_object_positions(self._scene_config, np.random.default_rng(seed))
        self._reset_state()
        for adr, position in zip(self._object_qpos, positions, strict=True):
            self._data.qpos[adr : adr + 3] = position
            self._data.qpos[adr + 3 : adr + 7] = (1.0, 0.0, 0.0, 0.0)
        return self._finish_reset(int(seed), positions)

    @property
    def episode(self):
        """The :class:`rt2_sim.tasks.EpisodeSpec` of the last :meth:`reset_episode`, or None
        after a plain :meth:`reset`."""
        return self._episode

    def reset_episode(self, spec) -> SceneInfo:
        """Set up the episode ``spec`` (a :class:`rt2_sim.tasks.EpisodeSpec`): objects' shapes,
        colours and places, containers, table, floor and light; arm to "ready", gripper open.

        The model's object slots and container bodies are re-dressed in place (no recompile,
        so an existing renderer stays valid). Unused slots wait out of view.

        Raises:
            ValueError: if the scene has no container slots or too few object slots for
                ``spec`` (build it with :func:`rt2_sim.tasks.task_scene_config`).
        """
        cfg = self._scene_config
        objects = [o for o in spec.objects if o.kind == "object"]
        containers = [o for o in spec.objects if o.kind == "container"]
        if len(objects) > cfg.num_objects or (containers and cfg.num_containers == 0):
            raise ValueError(
                f"episode: expected <= {cfg.num_objects} objects and container slots, got "
                f"{len(objects)} objects, {len(containers)} containers with num_containers "
                f"{cfg.num_containers}")
        base = base_position(cfg)
        model = self._model
        self._restore_default_scene()
        self._reset_state()
        positions = np.asarray(spec.positions, dtype=float) + base
        names, bodies, qpos_adr = [], [], []
        obj_positions = [p for o, p in zip(spec.objects, positions, strict=True)
                         if o.kind == "object"]
        for slot in range(cfg.num_objects):
            adr = int(model.joint(f"object_{slot}_joint").qposadr[0])
            geom = self._slot_geoms[slot]
            if slot < len(objects):
                obj = objects[slot]
                half = obj.size / 2
                kind, size, rbound = {
                    "cube": (mujoco.mjtGeom.mjGEOM_BOX, (half, half, half), math.sqrt(3) * half),
                    "sphere": (mujoco.mjtGeom.mjGEOM_SPHERE, (half, 0.0, 0.0), half),
                    "cylinder": (mujoco.mjtGeom.mjGEOM_CYLINDER, (half, half, 0.0),
                                 math.sqrt(2) * half),
                }[obj.shape]
                model.geom_type[geom] = kind
                model.geom_size[geom] = size
                model.geom_rbound[geom] = rbound
                model.geom_aabb[geom] = (0.0, 0.0, 0.0, half, half, half)
                model.geom_rgba[geom] = (*obj.rgb, 1.0)
                position = obj_positions[slot]
                names.append(SceneObject(obj.name, obj.colour, tuple(obj.rgb), f"object_{slot}"))
                bodies.append(model.body(f"object_{slot}").id)
                qpos_adr.append(adr)
            else:  # parked: no contacts, no gravity, under the floor
                position = parking_position(cfg, slot)
                model.geom_contype[geom] = 0
                model.geom_conaffinity[geom] = 0
                model.body_gravcomp[self._slot_bodies[slot]] = 1.0
            self._data.qpos[adr : adr + 3] = position
            self._data.qpos[adr + 3 : adr + 7] = (1.0, 0.0, 0.0, 0.0)
        for k, shape in enumerate(CONTAINER_SHAPES[: cfg.num_containers]):
            body = model.body(f"container_{k}")
            mocap = int(body.mocapid[0])
            match = [(o, p) for o, p in zip(spec.objects, positions, strict=True)
                     if o.kind == "container" and o.shape == shape]
            if match:
                obj, position = match[0]
                self._data.mocap_pos[mocap] = position
                for g in range(int(body.geomadr[0]), int(body.geomadr[0] + body.geomnum[0])):
                    model.geom_rgba[g] = (*obj.rgb, 1.0)
                names.append(SceneObject(obj.name, obj.colour, tuple(obj.rgb), f"container_{k}"))
                bodies.append(body.id)
            else:
                self._data.mocap_pos[mocap] = parking_position(cfg, 10 + k)
        bg = spec.background
        model.geom_rgba[self._table_geom] = (*bg.table_rgb, 1.0)
        model.geom_rgba[self._floor_geom] = (*bg.floor_rgb, 1.0)
        direction = np.asarray(bg.light_direction, dtype=float)
        model.light_dir[self._key_light] = direction / np.linalg.norm(direction)
        model.light_diffuse[self._key_light] = (bg.light_diffuse,) * 3
        self._objects = tuple(names)
        self._object_body = bodies
        self._object_qpos = qpos_adr
        self._episode = spec
        return self._finish_reset(int(spec.task.seed), positions[: len(names)])

    def _restore_default_scene(self) -> None:
        model = self._model
        for name, values in self._geom_defaults.items():
            getattr(model, name)[self._slot_geoms] = values
        model.body_gravcomp[self._slot_bodies] = self._gravcomp_defaults
        table, floor, light_dir, light_diffuse = self._background_defaults
        model.geom_rgba[self._table_geom] = table
        model.geom_rgba[self._floor_geom] = floor
        model.light_dir[self._key_light] = light_dir
        model.light_diffuse[self._key_light] = light_diffuse
        self._objects, qpos, body = self._default_objects
        self._object_qpos, self._object_body = list(qpos), list(body)
        self._episode = None

    def _reset_state(self) -> None:
        now = self._data.time
        mujoco.mj_resetData(self._model, self._data)
        self._data.time = now
        self._target_time = now
        for k in range(self._scene_config.num_containers):
            mocap = int(self._model.body(f"container_{k}").mocapid[0])
            self._data.mocap_pos[mocap] = parking_position(self._scene_config, 10 + k)
        # Object slots beyond the default scene's objects stay parked.

    def _finish_reset(self, seed: int, positions: np.ndarray) -> SceneInfo:
        self._data.qpos[self._qpos_adr[:7]] = READY_POSE
        self._data.qpos[self._qpos_adr[7:]] = FINGER_OPEN_POSITION
        self._data.ctrl[self._arm_ctrl] = READY_POSE
        self._gripper = 0.0
        self._data.ctrl[self._finger_ctrl] = FINGER_OPEN_POSITION
        self._servo.reset(READY_POSE)
        mujoco.mj_forward(self._model, self._data)
        self._info = SceneInfo(
            seed=int(seed),
            object_names=tuple(o.name for o in self._objects),
            colours=tuple(o.rgb for o in self._objects),
            initial_positions=_read_only(positions),
            description=self._describe(positions),
        )
        return self._info

    def command_twist(
        self,
        linear: Sequence[float] | np.ndarray,
        angular: Sequence[float] | np.ndarray,
        frame_id: str = BASE_FRAME,
        stamp: float | None = None,
    ) -> None:
        """Command a tcp twist (MoveIt Servo ``delta_twist_cmds`` semantics).

        Args:
            linear: tcp linear velocity, shape (3,), m/s, in ``frame_id``.
            angular: angular velocity, shape (3,), rad/s, in ``frame_id``.
            frame_id: ``panda_link0``, ``panda_hand``, ``tcp``, ``world``, or ``""``
                (= ``panda_link0``).
            stamp: command time, seconds of :attr:`time`; None means now. The command halts
                once ``time - stamp`` exceeds ``incoming_command_timeout``.

        Raises:
            ValueError: on an unknown frame or non-finite values (the servo then halts).
        """
        self._servo.set_command(linear, angular, frame_id, self.time if stamp is None else stamp)

    def command_gripper(self, closure: float) -> None:
        """Command the gripper: 0.0 fully open (8 cm between fingers) .. 1.0 closed.

        Values outside [0, 1] are clamped. The fingers are position-controlled; on an object
        they squeeze with ``kp * (target - position)`` (kp = 500 N/m): about 10 N per finger on
        a 4 cm cube when fully closed.

        Raises:
            ValueError: if ``closure`` is NaN or not a number.
        """
        try:
            value = float(closure)
        except (TypeError, ValueError):
            raise ValueError(f"closure: expected a number in [0, 1], got {closure!r}") from None
        if math.isnan(value):
            raise ValueError(f"closure: expected a number in [0, 1], got {closure!r}")
        self._gripper = min(max(value, 0.0), 1.0)
        self._data.ctrl[self._finger_ctrl] = FINGER_OPEN_POSITION * (1.0 - self._gripper)

    def step(self, duration: float) -> None:
        """Advance the simulation by ``duration`` seconds.

        Physics steps at ``timestep``; the servo updates every ``control_period`` of simulation
        time. Fractions of a physics step are carried over to the next call.

        Raises:
            ValueError: if ``duration`` is negative or not finite.
        """
        if not math.isfinite(duration) or duration < 0.0:
            raise ValueError(f"duration: expected finite seconds >= 0, got {duration!r}")
        dt = self._model.opt.timestep
        self._target_time += duration
        remaining = int(math.floor((self._target_time - self._data.time) / dt + 0.5))
        while remaining > 0:
            phase = self._steps % self._decimation
            if phase == 0:
                targets = self._servo.update(self._data.time)
                ctrl = targets + self._feedforward * self._servo.joint_velocity_command
                self._data.ctrl[self._arm_ctrl] = np.clip(
                    ctrl, self._ctrl_range[:, 0], self._ctrl_range[:, 1]
                )
            # Up to the next servo update in one call: one GIL release per control period.
            n = min(self._decimation - phase, remaining)
            mujoco.mj_step(self._model, self._data, nstep=n)
            self._steps += n
            remaining -= n

    def pose_arm(self, joint_positions: np.ndarray) -> None:
        """Place the arm at ``joint_positions`` at once, for still images (VQA scenes).

        No physics runs: kinematics are recomputed so :meth:`ee_pose` and :meth:`render` show
        the new pose. The servo still holds its old targets, so call :meth:`reset` or
        :meth:`reset_episode` before :meth:`step` again.

        Args:
            joint_positions: the 7 arm joint angles, radians (finger joints are unchanged).

        Raises:
            ValueError: when the shape is not (7,) or a value is not finite.
        """
        q = np.asarray(joint_positions, dtype=float)
        if q.shape != (7,) or not np.all(np.isfinite(q)):
            raise ValueError(f"joint_positions: expected 7 finite radians, got {joint_positions!r}")
        self._data.qpos[self._qpos_adr[:7]] = q
        self._data.qvel[self._dof_adr[:7]] = 0.0
        mujoco.mj_forward(self._model, self._data)

    def pose_tcp(self, position: np.ndarray, iterations: int = 60,
                 tolerance: float = 0.005) -> bool:
        """Place the arm (:meth:`pose_arm`) so the ``tcp`` is at ``position`` with the ready
        pose's orientation, by damped least-squares inverse kinematics from the ready pose.

        Args:
            position: tcp position in ``panda_link0``, shape (3,), metres.
            iterations: IK steps at most.
            tolerance: position error accepted, metres.

        Returns:
            True when the error is within ``tolerance`` (the arm is left at the best pose
            found either way).
        """
        goal = np.asarray(position, dtype=float)
        if goal.shape != (3,) or not np.all(np.isfinite(goal)):
            raise ValueError(f"position: expected 3 finite metres, got {position!r}")
        model, data = self._model, self._data
        q = np.asarray(READY_POSE, dtype=float).copy()
        self.pose_arm(q)
        base_rot = data.xmat[self._base_id].reshape(3, 3).copy()
        goal_world = data.xpos[self._base_id] + base_rot @ goal
        goal_rot = data.site_xmat[self._tcp_id].reshape(3, 3).copy()
        jac_p = np.zeros((3, model.nv))
        jac_r = np.zeros((3, model.nv))
        lower, upper = model.jnt_range[self._arm_joint_ids].T
        error = np.inf
        for _ in range(iterations):
            pos_err = goal_world - data.site_xpos[self._tcp_id]
            rot = data.site_xmat[self._tcp_id].reshape(3, 3)
            rot_err = 0.5 * sum(np.cross(rot[:, k], goal_rot[:, k]) for k in range(3))
            error = float(np.linalg.norm(pos_err))
            if error < tolerance and np.linalg.norm(rot_err) < 0.02:
                break
            mujoco.mj_jacSite(model, data, jac_p, jac_r, self._tcp_id)
            jac = np.vstack([jac_p[:, self._dof_adr[:7]], jac_r[:, self._dof_adr[:7]]])
            err = np.concatenate([pos_err, rot_err])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)
            q = np.clip(q + dq, lower, upper)
            self.pose_arm(q)
        return error < tolerance

    # ------------------------------------------------------------------ observations
    def joint_positions(self) -> np.ndarray:
        """Arm then finger joint positions, shape (9,), float64, radians / metres."""
        return self._data.qpos[self._qpos_adr].copy()

    def joint_velocities(self) -> np.ndarray:
        """Arm then finger joint velocities, shape (9,), float64, rad/s / m/s."""
        return self._data.qvel[self._dof_adr].copy()

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Pose of the ``tcp`` in the ``panda_link0`` frame.

        Returns:
            ``(position (3,) metres, quaternion (4,) as (x, y, z, w))``, float64.
        """
        base_rot = self._data.xmat[self._base_id].reshape(3, 3)
        position = base_rot.T @ (
            self._data.site_xpos[self._tcp_id] - self._data.xpos[self._base_id]
        )
        rotation = base_rot.T @ self._data.site_xmat[self._tcp_id].reshape(3, 3)
        return position, _quat_xyzw(rotation)

    def object_positions(self) -> dict[str, np.ndarray]:
        """Object centres by name, world frame, each shape (3,), float64, metres."""
        return {
            obj.name: self._data.xpos[body].copy()
            for obj, body in zip(self._objects, self._object_body, strict=True)
        }

    def finger_contacts(self, name: str) -> int:
        """How many finger pads (0, 1 or 2) touch the object ``name`` now, from MuJoCo's
        contact list (2 with the gripper closed: the object is held).

        Raises:
            KeyError: for an object not in the scene.
        """
        names = [obj.name for obj in self._objects]
        if name not in names:
            raise KeyError(f"object: expected one of {names}, got {name!r}")
        body = self._object_body[names.index(name)]
        touching = set()
        for contact in self._data.contact[: self._data.ncon]:
            pair = (int(self._model.geom_bodyid[contact.geom1]),
                    int(self._model.geom_bodyid[contact.geom2]))
            if body in pair:
                other = pair[1] if pair[0] == body else pair[0]
                if other in self._finger_bodies:
                    touching.add(other)
        return len(touching)

    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Pose of ``panda_link0`` in ``world``: ``(position (3,), quaternion (x, y, z, w))``."""
        return (
            self._data.xpos[self._base_id].copy(),
            _quat_xyzw(self._data.xmat[self._base_id].reshape(3, 3)),
        )

    # ------------------------------------------------------------------ camera
    def render(self) -> np.ndarray:
        """Render the scene camera (:meth:`update_scene` then :meth:`render_scene`).

        OpenGL contexts are current in one thread: call the rendering methods (and
        :meth:`close`) from one thread only.

        Returns:
            RGB image, shape ``(image_height, image_width, 3)``, uint8 (``rgb8``).
        """
        self.update_scene()
        return self.render_scene()

    def prepare_renderer(self) -> None:
        """Create the offscreen renderer now (it is otherwise created on first use).

        Reads only the model, not the simulation state, so it needs no lock against
        :meth:`step`; it can take a second on a CPU rasteriser.
        """
        if self._renderer is None:
            cfg = self._scene_config
            self._renderer = mujoco.Renderer(self._model, cfg.image_height, cfg.image_width)

    def update_scene(self) -> None:
        """Copy the current state into the renderer's scene (fast; reads the live state)."""
        self.prepare_renderer()
        assert self._renderer is not None
        self._renderer.update_scene(self._data, camera=self._camera_id)

    def render_scene(self) -> np.ndarray:
        """Rasterise the scene captured by the last :meth:`update_scene` (slow; reads no state).

        Returns:
            RGB image, shape ``(image_height, image_width, 3)``, uint8 (``rgb8``).

        Raises:
            RuntimeError: if :meth:`update_scene` was not called since the renderer was made.
        """
        if self._renderer is None:
            raise RuntimeError("render_scene: expected update_scene() first, got no renderer")
        return self._renderer.render().copy()

    def camera_info(self) -> CameraIntrinsics:
        """Pinhole intrinsics of the scene camera (from its vertical field of view)."""
        cfg = self._scene_config
        fovy = math.radians(float(self._model.cam_fovy[self._camera_id]))
        f = 0.5 * cfg.image_height / math.tan(0.5 * fovy)
        return CameraIntrinsics(
            fx=f,
            fy=f,
            cx=(cfg.image_width - 1) / 2.0,
            cy=(cfg.image_height - 1) / 2.0,
            width=cfg.image_width,
            height=cfg.image_height,
        )

    def camera_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Pose of ``scene_camera_optical_frame`` in ``world``.

        The optical frame has z forward, x right, y down (REP 103 ``_optical`` suffix); MuJoCo's
        camera frame (x right, y up, looking along -z) is turned by pi about x.

        Returns:
            ``(position (3,) metres, quaternion (4,) as (x, y, z, w))``, float64.
        """
        rotation = self._data.cam_xmat[self._camera_id].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        return self._data.cam_xpos[self._camera_id].copy(), _quat_xyzw(rotation)

    def close(self) -> None:
        """Release the renderer's OpenGL context (idempotent; call it from the rendering thread).

        The simulation stays usable; a later render creates a new renderer.
        """
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> ArmSimulation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers
    def _describe(self, positions: np.ndarray) -> str:
        base = self._data.xpos[self._base_id]
        parts = [
            f"{obj.name} at x={p[0] - base[0]:.2f} m y={p[1] - base[1]:+.2f} m"
            for obj, p in zip(self._objects, positions, strict=True)
        ]
        return (
            f"{len(parts)} objects on the table in front of the Panda (panda_link0 frame): "
            + ", ".join(parts)
        )


def _quat_xyzw(rotation: np.ndarray) -> np.ndarray:
    wxyz = np.zeros(4)
    mujoco.mju_mat2Quat(wxyz, np.ascontiguousarray(rotation, dtype=float).ravel())
    return np.array([wxyz[1], wxyz[2], wxyz[3], wxyz[0]])


def _read_only(array: np.ndarray) -> np.ndarray:
    out = np.array(array, dtype=float)
    out.flags.writeable = False
    return out
