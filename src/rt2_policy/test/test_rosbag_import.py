"""rosbag2 → LeRobot import: a bag written here with rosbags (sqlite3 and mcap), read back."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags not installed (requirements/python.txt)")

from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402

from rt2_policy.data.lerobot_dataset import LeRobotDataset  # noqa: E402
from rt2_policy.data.rosbag_import import main, rt2_typestore  # noqa: E402

H, W = 12, 16
ARM = [f"panda_joint{i}" for i in range(1, 8)]
FINGERS = ["panda_finger_joint1", "panda_finger_joint2"]


def _time(store, t):
    Time = store.types["builtin_interfaces/msg/Time"]
    return Time(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))


def _header(store, t, frame="panda_link0"):
    return store.types["std_msgs/msg/Header"](stamp=_time(store, t), frame_id=frame)


def _image(store, t, value, encoding="rgb8"):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = value, 2 * value, 3 * value
    data = rgb[..., ::-1] if encoding == "bgr8" else rgb
    Image = store.types["sensor_msgs/msg/Image"]
    return Image(header=_header(store, t, "camera"), height=H, width=W, encoding=encoding,
                 is_bigendian=0, step=W * 3, data=np.ascontiguousarray(data).ravel())


def _action(store, t, ep, step, terminate=False):
    V = store.types["geometry_msgs/msg/Vector3"]
    RT2Action = store.types["rt2_msgs/msg/RT2Action"]
    return RT2Action(
        header=_header(store, t), episode_id=ep, step=step,
        bins=np.array([int(terminate), 128, 128, 128, 128, 128, 128, 0], np.uint8),
        terminate=terminate, delta_position=V(x=0.01 * (step + 1), y=-0.02, z=0.0),
        delta_rotation=V(x=0.0, y=0.0, z=0.1), gripper=0.25 * step, text="", plan="",
        inference_latency=0.04)


def _status(store, t, ep, instruction, state, outcome=0):
    Status = store.types["rt2_msgs/msg/EpisodeStatus"]
    return Status(header=_header(store, t, ""), episode_id=ep, instruction=instruction, step=0,
                  state=state, outcome=outcome, message="")


def _joint_state(store, t, names, positions):
    JointState = store.types["sensor_msgs/msg/JointState"]
    empty = np.zeros(0, np.float64)
    return JointState(header=_header(store, t, ""), name=list(names),
                      position=np.array(list(positions), np.float64), velocity=empty, effort=empty)


def _arm_q(t):
    """The arm's joint angles at time t, rad: distinct per joint and per message."""
    return [0.1 * (i + 1) + round(t - 100.0, 3) for i in range(7)]


def _finger_q(t):
    """The fingers' positions at time t, m."""
    return [0.04 - 0.01 * round(t - 100.0, 3), 0.03]


def _write_bag(path, plugin, joint_states=True, hand_from=99.9):
    """Two episodes at 5 Hz with a 15 Hz camera; episode 1 terminates, episode 2 is cut by
    its FINISHED status; bgr8 frames in episode 2. With ``joint_states``, /joint_states carries
    the arm (every 0.1 s from t0 - 0.05, names in reverse order) and, in other messages, the
    hand (every 0.25 s from ``hand_from``)."""
    store = rt2_typestore()
    String = store.types["std_msgs/msg/String"]
    messages = []  # (time, topic, msgtype, msg)
    t0 = 100.0
    for k in range(25 if joint_states else 0):
        t = t0 - 0.05 + 0.1 * k
        messages.append((t, "/joint_states", "sensor_msgs/msg/JointState",
                         _joint_state(store, t, reversed(ARM), reversed(_arm_q(t)))))
    for k in range(12 if joint_states else 0):
        t = hand_from + 0.25 * k
        messages.append((t, "/joint_states", "sensor_msgs/msg/JointState",
                         _joint_state(store, t, FINGERS, _finger_q(t))))
    messages.append((t0, "/rt2/instruction", "std_msgs/msg/String",
                     String(data="pick up the red cube")))
    messages.append((t0 + 0.01, "/rt2/episode_status", "rt2_msgs/msg/EpisodeStatus",
                     _status(store, t0 + 0.01, "ep1", "pick up the red cube", 1)))
    for k in range(30):  # camera 15 Hz for 2 s
        t = t0 + k / 15.0
        enc = "bgr8" if t >= t0 + 1.0 else "rgb8"
        messages.append((t, "/camera/image_raw", "sensor_msgs/msg/Image",
                         _image(store, t, k, enc)))
    for step in range(3):  # episode 1: stamped with their frame's time (frames 2, 5, 8)
        t = t0 + (2 + 3 * step) / 15.0
        messages.append((t, "/rt2/action", "rt2_msgs/msg/RT2Action",
                         _action(store, t, "ep1", step, terminate=step == 2)))
    messages.append((t0 + 1.0, "/rt2/episode_status", "rt2_msgs/msg/EpisodeStatus",
                     _status(store, t0 + 1.0, "ep2", "push the blue ball", 1)))
    for step in range(2):  # episode 2: stamped at publication, 0.04 s of inference after
        t = t0 + 1.1 + 0.2 * step  # frames 15 (t0 + 1.0) and 18 (t0 + 1.2)
        messages.append((t, "/rt2/action", "rt2_msgs/msg/RT2Action",
                         _action(store, t, "ep2", step)))
    messages.append((t0 + 1.6, "/rt2/episode_status", "rt2_msgs/msg/EpisodeStatus",
                     _status(store, t0 + 1.6, "ep2", "push the blue ball", 3, outcome=2)))
    messages.sort(key=lambda m: m[0])
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for t, topic, msgtype, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(conns[topic], int(t * 1e9), store.serialize_cdr(msg, msgtype))


@pytest.mark.parametrize("plugin", [StoragePlugin.SQLITE3, StoragePlugin.MCAP],
                         ids=["sqlite3", "mcap"])
def test_bag_converts_to_a_dataset(tmp_path, capsys, plugin):
    bag = tmp_path / "bag"
    _write_bag(bag, plugin)
    assert main([str(bag), str(tmp_path / "ds")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["episodes"], summary["frames"], summary["fps"]) == (2, 5, 5.0)
    assert summary["counters"]["paired"] == 5
    assert summary["state_joints"] == ARM + FINGERS
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 2 and len(ds) == 5 and ds.fps == 5.0
    assert ds.features["observation.state"]["names"] == ARM + FINGERS  # info.json
    assert ds.tasks == ["pick up the red cube", "push the blue ball"]
    first = ds[0]
    assert first["image"].shape == (H, W, 3)
    assert [ds[i]["image"][0, 0, 0] for i in range(3)] == [2, 5, 8]  # exact stamp matches
    np.testing.assert_allclose(first["action"], [0, 0.01, -0.02, 0, 0, 0, 0.1, 0], atol=1e-7)
    last_of_first = ds[2]
    assert last_of_first["done"] and last_of_first["action"][0] == 1.0
    assert last_of_first["timestamp"] == pytest.approx(0.4, abs=1e-6)
    assert main([str(bag), str(tmp_path / "plain"), "--no-latency-compensation"]) == 0
    assert LeRobotDataset(tmp_path / "plain")[3]["image"][0, 0, 0] == 16
    # episode 2: t0 + 1.1 - 0.04 s latency -> frame 15 (t0 + 1.0), not 16 (t0 + 1.067);
    # stored bgr8, read back as RGB
    second = ds[3]
    assert second["task"] == "push the blue ball" and second["episode_index"] == 1
    assert second["image"][0, 0].tolist() == [15, 30, 45]
    assert ds[4]["image"][0, 0, 0] == 18
    assert ds[4]["action"][7] == pytest.approx(0.25)
    # observation.state: the arm's and the hand's messages merged, each joint's newest position
    # at or before the frame's stamp (frames 2, 5, 8, 15, 18 of the 15 Hz camera)
    t0 = 100.0
    arm_times = [t0 - 0.05 + 0.1 * k for k in range(25)]
    hand_times = [99.9 + 0.25 * k for k in range(12)]
    for i, frame in enumerate([2, 5, 8, 15, 18]):
        t = t0 + frame / 15.0
        ta = max(x for x in arm_times if x <= t)
        th = max(x for x in hand_times if x <= t)
        np.testing.assert_allclose(ds[i]["state"], _arm_q(ta) + _finger_q(th), rtol=1e-6,
                                   err_msg=f"frame {i}")
    # frame 8 (t0 + 0.533): arm message of t0 + 0.45, hand message of t0 + 0.4
    np.testing.assert_allclose(ds[2]["state"], [0.55, 0.65, 0.75, 0.85, 0.95, 1.05, 1.15,
                                                0.036, 0.03], rtol=1e-6)


def test_step_without_every_joint_state_is_not_imported(tmp_path, capsys):
    bag = tmp_path / "bag"
    _write_bag(bag, StoragePlugin.SQLITE3, hand_from=100.4)  # no fingers for frames 2 and 5
    assert main([str(bag), str(tmp_path / "ds")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["counters"]["dropped_no_state"] == 2 and summary["frames"] == 3
    ds = LeRobotDataset(tmp_path / "ds")
    assert [ds[i]["image"][0, 0, 0] for i in range(3)] == [8, 15, 18]
    np.testing.assert_allclose(ds[0]["state"][7:], _finger_q(100.4), rtol=1e-6)


def test_state_joints_option(tmp_path, capsys):
    bag = tmp_path / "bag"
    _write_bag(bag, StoragePlugin.SQLITE3, joint_states=False)
    assert main([str(bag), str(tmp_path / "ds")]) == 1  # default: the Panda's joints
    assert "no '/joint_states' topic" in capsys.readouterr().err
    assert main([str(bag), str(tmp_path / "ds"), "--state-joints"]) == 0  # no state
    ds = LeRobotDataset(tmp_path / "ds")
    assert len(ds) == 5 and not ds.has_state and "state" not in ds[0]
    capsys.readouterr()
    bag2 = tmp_path / "bag2"
    _write_bag(bag2, StoragePlugin.MCAP)
    assert main([str(bag2), str(tmp_path / "ds2"), "--state-joints", "panda_finger_joint2",
                 "panda_joint3"]) == 0
    ds = LeRobotDataset(tmp_path / "ds2")
    # frame 2 (t0 + 0.133): arm message of t0 + 0.05, in the order asked for
    assert ds[0]["state"].shape == (2,)
    assert ds.features["observation.state"]["names"] == ["panda_finger_joint2", "panda_joint3"]
    np.testing.assert_allclose(ds[0]["state"], [0.03, _arm_q(100.05)[2]], rtol=1e-6)


def test_max_state_age_option_drops_steps_with_stale_joint_states(tmp_path, capsys):
    """The hand publishes every 0.25 s from t0 - 0.1: at frames 2 and 5 its newest positions
    are 0.233 and 0.183 s old, at frames 8, 15 and 18 0.133, 0.1 and 0.05 s (the arm's at most
    0.083 s)."""
    bag = tmp_path / "bag"
    _write_bag(bag, StoragePlugin.SQLITE3)
    assert main([str(bag), str(tmp_path / "ds"), "--max-state-age", "0.15"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    counters = summary["counters"]
    assert (counters["dropped_stale_state"], counters["dropped_no_state"]) == (2, 0)
    assert summary["frames"] == 3
    ds = LeRobotDataset(tmp_path / "ds")
    assert [ds[i]["image"][0, 0, 0] for i in range(3)] == [8, 15, 18]
    assert main([str(bag), str(tmp_path / "all"), "--max-state-age", "0"]) == 0  # no limit
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 5 and summary["counters"]["dropped_stale_state"] == 0
    assert main([str(bag), str(tmp_path / "bad"), "--max-state-age", "-1"]) == 1
    assert "max_state_age: expected a finite number >= 0" in capsys.readouterr().err


def test_missing_bag_and_topicless_bag_fail_clearly(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), str(tmp_path / "ds")]) == 1
    assert "does not exist" in capsys.readouterr().err
    store = rt2_typestore()
    with Writer(tmp_path / "empty", version=9) as writer:
        conn = writer.add_connection("/other", "std_msgs/msg/String", typestore=store)
        writer.write(conn, 1, store.serialize_cdr(store.types["std_msgs/msg/String"](data="x"),
                                                  "std_msgs/msg/String"))
    assert main([str(tmp_path / "empty"), str(tmp_path / "ds")]) == 1
    assert "no '/rt2/action' topic" in capsys.readouterr().err
