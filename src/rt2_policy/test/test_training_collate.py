"""Example encoding and label masking: only answer/action tokens are learned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt2_policy.action_tokenizer import ActionTokenizer
from rt2_policy.plans import parse_plan_and_action
from rt2_policy.prompts import action_prompt, with_image
from rt2_policy.token_mapping import ActionTokenMapping, load_action_config
from rt2_policy.training.collate import (
    IGNORE_INDEX,
    KIND_ROBOT,
    KIND_VQA,
    ExampleEncoder,
    MixtureBatches,
    collate,
)
from rt2_policy.training.mixture import MixtureSampler
from rt2_policy.training.trainer import token_losses


def _image(seed=0, shape=(48, 64, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


ACTION = np.array([0.0, 0.03, -0.01, 0.0, 0.1, 0.0, -0.2, 1.0], np.float32)


@pytest.fixture(scope="module")
def encoder(tiny_vla_parts, tiny_vla_dir):
    _model, processor = tiny_vla_parts
    action_tokenizer, mapping = load_action_config(tiny_vla_dir)
    return ExampleEncoder(processor, action_tokenizer, mapping)


def test_robot_example_prompt_is_the_inference_prompt_and_target_the_action_ids(encoder):
    enc = encoder.encode_robot({"image": _image(), "task": "pick up the red cube",
                                "action": ACTION})
    reference = encoder.processor(text=[with_image(action_prompt("pick up the red cube"))],
                                  images=[[_image()]], return_tensors="pt")
    assert torch.equal(enc.prompt_ids, reference["input_ids"][0])
    bins = ActionTokenizer().encode(False, ACTION[1:4], ACTION[4:7], ACTION[7])
    assert enc.target_ids == tuple(encoder.token_mapping.bin_to_token_id(bins).tolist())
    tok = encoder.tokenizer
    assert tok.decode(list(enc.target_ids)) == ActionTokenizer().to_text(bins)
    assert enc.images["pixel_values"].dtype == torch.float16
    assert encoder.target_ids(enc) == (*enc.target_ids, tok.eos_token_id)


def test_labels_mask_prompt_image_and_padding(encoder):
    robot = encoder.encode_robot({"image": _image(1), "task": "push the blue ball left",
                                  "action": ACTION})
    vqa = encoder.encode_vqa({"image": _image(2), "question": "what colour is the ball?",
                              "answer": "blue"})
    rows = [(robot, encoder.target_ids(robot)), (vqa, encoder.target_ids(vqa))]
    batch = collate(rows, encoder.pad_id)
    assert batch["kind"].tolist() == [KIND_ROBOT, KIND_VQA]
    image_id = encoder.tokenizer.convert_tokens_to_ids("<image>")
    for row, (enc, target) in enumerate(rows):
        n_prompt, n_target = len(enc.prompt_ids), len(target)
        labels = batch["labels"][row]
        ids = batch["input_ids"][row]
        # only the target positions carry labels, and they equal the input ids there
        assert (labels[:n_prompt] == IGNORE_INDEX).all()
        assert labels[n_prompt:n_prompt + n_target].tolist() == list(target)
        assert (labels[n_prompt + n_target:] == IGNORE_INDEX).all()
        assert (labels[ids == image_id] == IGNORE_INDEX).all()
        # right padding: attention 0 and pad ids after the target
        assert batch["attention_mask"][row].sum() == n_prompt + n_target
        assert (ids[n_prompt + n_target:] == encoder.pad_id).all()
    assert encoder.tokenizer.decode(list(rows[1][1]), skip_special_tokens=True) == "blue"
    assert batch["pixel_values"].dtype == torch.float32
    assert batch["pixel_attention_mask"].dtype == torch.int64
    assert tuple(batch["pixel_values"].shape[:2]) == (2, 1)


def test_loss_counts_exactly_the_target_tokens(encoder, tiny_vla_parts):
    model, _ = tiny_vla_parts
    robot = encoder.encode_robot({"image": _image(3), "task": "pick up the red cube",
                                  "action": ACTION})
    vqa = encoder.encode_vqa({"image": _image(4), "question": "how many cubes are there?",
                              "answer": "two cubes"})
    rows = [(robot, encoder.target_ids(robot)), (vqa, encoder.target_ids(vqa))]
    batch = collate(rows, encoder.pad_id)
    with torch.inference_mode():
        losses, logits, targets, kinds, rows_idx = token_losses(model, batch)
        # Hugging Face's own shifted loss over the same labels agrees with ours
        inputs = {k: v for k, v in batch.items() if k not in ("kind",)}
        hf_loss = model(**inputs).loss
    assert len(losses) == sum(len(t) for _, t in rows) == 9 + 3
    assert kinds.tolist() == [KIND_ROBOT] * 9 + [KIND_VQA] * 3
    assert rows_idx.tolist() == [0] * 9 + [1] * 3
    assert targets.tolist() == [*rows[0][1], *rows[1][1]]
    assert float(losses.mean()) == pytest.approx(float(hf_loss), rel=1e-4)

    # changing a prompt token changes the inputs but never what is counted
    batch2 = {k: v.clone() for k, v in batch.items()}
    batch2["input_ids"][0, len(robot.prompt_ids) - 3] = encoder.pad_id  # a prompt word
    with torch.inference_mode():
        losses2, *_ = token_losses(model, batch2)
    assert len(losses2) == len(losses)


def test_chain_of_thought_target(encoder):
    enc = encoder.encode_robot({"image": _image(), "task": "pick up the red cube",
                                "action": ACTION})
    target = encoder.target_ids(enc, plan="pick up the red cube")
    tok = encoder.tokenizer
    assert target[-9:] == (*enc.target_ids, tok.eos_token_id)
    assert tuple(target[-9 - len(encoder.marker_ids):-9]) == encoder.marker_ids
    text = tok.decode(list(target), skip_special_tokens=True)
    assert text.startswith("plan : pick up the red cube .")
    plan, action = parse_plan_and_action(text)
    assert plan == "pick up the red cube"
    assert action == tok.decode(list(enc.target_ids))
    assert tok.unk_token_id not in target


def test_other_token_schemes_splice_the_mapped_ids(tiny_vla_parts):
    _model, processor = tiny_vla_parts
    mapping = ActionTokenMapping.last_n(len(processor.tokenizer))
    enc = ExampleEncoder(processor, ActionTokenizer(), mapping)
    example = enc.encode_robot({"image": _image(), "task": "pick up the cube", "action": ACTION})
    bins = ActionTokenizer().encode(False, ACTION[1:4], ACTION[4:7], ACTION[7])
    assert example.target_ids == tuple(len(processor.tokenizer) - 1 - b for b in bins)


@pytest.mark.parametrize("example, message", [
    ({"image": _image(), "task": "pick", "action": np.zeros(7)}, "action: expected shape"),
    ({"image": _image(), "task": "pick", "action": np.full(8, np.nan)}, "expected finite"),
    ({"image": _image(), "task": "", "action": ACTION}, "instruction: expected a non-empty"),
    ({"image": np.zeros((4, 4), np.uint8), "task": "pick", "action": ACTION}, "image:"),
    ({"task": "pick", "action": ACTION}, "expected key 'image'"),
])
def test_bad_robot_examples_raise_clear_errors(encoder, example, message):
    with pytest.raises(ValueError, match=message):
        encoder.encode_robot(example)


def test_bad_vqa_examples_raise_clear_errors(encoder):
    with pytest.raises(ValueError, match="answer: expected a non-empty string"):
        encoder.encode_vqa({"image": _image(), "question": "what?", "answer": " "})
    with pytest.raises(ValueError, match="question: expected a non-empty string"):
        encoder.encode_vqa({"image": _image(), "question": "", "answer": "red"})


def test_batches_are_deterministic_and_use_the_cache(encoder):
    robot = [{"image": _image(i), "task": "pick up the red cube", "action": ACTION}
             for i in range(6)]
    vqa = [{"image": _image(10 + i), "question": "what colour?", "answer": "red"}
           for i in range(4)]
    sampler = MixtureSampler(len(robot), len(vqa), 4, 0.5, seed=1)
    cached = MixtureBatches(robot, vqa, encoder, sampler, cot=0.5, cache_bytes=2**26)
    assert cached.preload() == 10 and cached.encoded_count == 10
    uncached = MixtureBatches(robot, vqa, encoder, sampler, cot=0.5, cache_bytes=0)
    for b in range(6):
        one, two = cached[b], uncached[b]
        assert one.keys() == two.keys()
        for key in one:
            assert torch.equal(one[key], two[key]), key
        assert int((one["kind"] == KIND_ROBOT).sum()) == 2
    assert cached.encoded_count == 10  # nothing re-encoded after the preload
    assert uncached.encoded_count == 6 * 4


def test_plans_mapping_supplies_the_plan(tiny_vla_parts, tiny_vla_dir):
    _model, processor = tiny_vla_parts
    enc = ExampleEncoder(processor, *load_action_config(tiny_vla_dir),
                         plans={"lift the red block": "pick up the red cube"})
    mapped = enc.encode_robot({"image": _image(), "task": "lift the red block", "action": ACTION})
    assert mapped.plan == {"task": "lift the red block", "plan": "pick up the red cube"}
    own = enc.encode_robot({"image": _image(), "task": "lift the red block", "action": ACTION,
                            "plan": "grasp it"})
    assert own.plan["plan"] == "grasp it"  # the example's own plan wins


def test_gripper_state_prompt_from_the_finger_joints(tiny_vla_parts, tiny_vla_dir, encoder):
    """With ``gripper_state_indices`` the prompt is ``action_prompt(task, state)``: the same ids
    as a frame whose task already reads ``"{task}, gripper {bin}"`` (a dataset written so)."""
    _model, processor = tiny_vla_parts
    with_state = ExampleEncoder(processor, *load_action_config(tiny_vla_dir),
                                gripper_state_indices=(7, 8))
    state = np.array([0.0] * 7 + [0.025, 0.025], np.float32)  # 3/8 closed → bin 96
    frame = {"image": _image(), "task": "pick up the red cube", "action": ACTION,
             "observation.state": state}
    enc = with_state.encode_robot(frame)
    written = encoder.encode_robot({**frame, "task": "pick up the red cube, gripper 96"})
    assert torch.equal(enc.prompt_ids, written.prompt_ids)
    plain = encoder.encode_robot(frame)  # the default encoder ignores the state
    assert not torch.equal(enc.prompt_ids, plain.prompt_ids)
    reference = processor(text=[with_image(action_prompt("pick up the red cube", 0.375))],
                          images=[[_image()]], return_tensors="pt")
    assert torch.equal(enc.prompt_ids, reference["input_ids"][0])
    with pytest.raises(ValueError, match="observation.state"):
        with_state.encode_robot({k: v for k, v in frame.items() if k != "observation.state"})
    short = ExampleEncoder(processor, *load_action_config(tiny_vla_dir),
                           gripper_state_indices=(9,))
    with pytest.raises(ValueError, match="gripper_state_indices: expected positions < 9"):
        short.encode_robot(frame)


@pytest.mark.parametrize("grasped", [True, False, np.bool_(True)])
def test_grasp_memory_ends_the_prompt(tiny_vla_parts, tiny_vla_dir, encoder, grasped):
    """With ``grasp_memory`` the prompt is ``action_prompt(task, state, None, grasped)`` from
    the frame's ``"grasped"`` (GraspMemoryFrames adds it); other encoders ignore the key, and
    a frame without it is refused."""
    _model, processor = tiny_vla_parts
    memory = ExampleEncoder(processor, *load_action_config(tiny_vla_dir),
                            gripper_state_indices=(7, 8), grasp_memory=True)
    state = np.array([0.0] * 7 + [0.025, 0.025], np.float32)  # bin 96
    frame = {"image": _image(), "task": "pick up the red cube", "action": ACTION,
             "observation.state": state, "grasped": grasped}
    enc = memory.encode_robot(frame)
    reference = processor(text=[with_image(action_prompt("pick up the red cube", 0.375, None,
                                                         bool(grasped)))],
                          images=[[_image()]], return_tensors="pt")
    assert torch.equal(enc.prompt_ids, reference["input_ids"][0])
    text = memory.tokenizer.decode(enc.prompt_ids.tolist(), skip_special_tokens=True)
    assert text.endswith(f"gripper 96 , grasp {int(grasped)} ? a :"), text
    assert memory.grasped_of(frame) is bool(grasped)
    assert encoder.grasped_of(frame) is None  # the default encoder adds none
    assert torch.equal(encoder.encode_robot(frame).prompt_ids,
                       encoder.encode_robot({**frame, "grasped": None}).prompt_ids)
    with pytest.raises(ValueError, match="expected a bool 'grasped'"):
        memory.encode_robot({k: v for k, v in frame.items() if k != "grasped"})
    with pytest.raises(ValueError, match="expected a bool 'grasped'"):
        memory.encode_robot({**frame, "grasped": 1})


def _move_near_frame(fingers, closes, reference=(200.0, 90.0), terminate=0.0):
    """A move-near frame: both fingers at ``fingers`` (m), the action's gripper ``closes``,
    the target at (40, 60) and the reference at ``reference`` (0..255, -1 -1 = none); the
    action's terminate flag ``terminate``."""
    action = ACTION.copy()
    action[7] = closes
    action[0] = terminate
    return {"image": _image(), "task": "move the red cube near the blue ball", "action": action,
            "observation.state": np.array([0.0] * 7 + [fingers, fingers], np.float32),
            "observation.target_point": np.array([40.0, 60.0], np.float32),
            "observation.reference_point": np.array(reference, np.float32)}


@pytest.mark.parametrize(("fingers", "closes", "expected"), [
    (0.02, 1.0, (200, 90)),    # closed on the object (state 0.5), carrying it: the reference
    (0.04, 1.0, (40, 60)),     # open, closing now (the grasp): still the target
    (0.02, 0.0, (200, 90)),    # holding, and the action opens (the release): the reference
    (0.0, 1.0, (40, 60)),      # closed on nothing (state 1.0): the target
])
def test_goal_grounding_points_at_the_reference_while_the_target_is_carried(
        tiny_vla_parts, tiny_vla_dir, fingers, closes, expected):
    _model, processor = tiny_vla_parts
    goal = ExampleEncoder(processor, *load_action_config(tiny_vla_dir),
                          gripper_state_indices=(7, 8), grounding_point="goal")
    frame = _move_near_frame(fingers, closes)
    enc = goal.encode_robot(frame)
    assert enc.point == expected and enc.reference_point == (200, 90)
    # pick and push frames have no reference (-1 -1): the target, whatever the gripper does
    no_reference = {**frame, "observation.reference_point": np.array([-1.0, -1.0], np.float32)}
    assert goal.encode_robot(no_reference).point == (40, 60)
    # the default grounds the target always
    target = ExampleEncoder(processor, *load_action_config(tiny_vla_dir),
                            gripper_state_indices=(7, 8))
    assert target.encode_robot(frame).point == (40, 60)
    with pytest.raises(ValueError, match="grounding_point: expected one of"):
        ExampleEncoder(processor, *load_action_config(tiny_vla_dir), grounding_point="both")


@pytest.mark.parametrize(("fingers", "closes", "reference", "expected", "terminate"), [
    (0.04, 1.0, (200.0, 90.0), "reach 40 60", 0.0),   # the grasp: to the target
    (0.02, 1.0, (200.0, 90.0), "bring 200 90", 0.0),  # holding it: to the reference
    (0.02, 1.0, (-1.0, -1.0), "bring 40 60", 0.0),    # pick (no reference): the held target
    (0.02, 0.0, (200.0, 90.0), "drop 200 90", 0.0),   # the release: where it is let go
    (0.0, 1.0, (200.0, 90.0), "reach 40 60", 0.0),    # closed on nothing (a push)
    (0.0, 1.0, (200.0, 90.0), "done 40 60", 1.0),  # the push's terminating frame
    (0.02, 1.0, (200.0, 90.0), "done 200 90", 1.0),  # terminating while holding
])
def test_goal_plans_say_where_the_arm_heads(tiny_vla_parts, tiny_vla_dir, fingers, closes,
                                            reference, expected, terminate):
    _model, processor = tiny_vla_parts
    encoder = ExampleEncoder(processor, *load_action_config(tiny_vla_dir),
                             gripper_state_indices=(7, 8), cot_plan="goal")
    frame = {**_move_near_frame(fingers, closes, reference, terminate),
             "plan": "a plan in the data is not a goal plan"}
    enc = encoder.encode_robot(frame)
    assert enc.plan["plan"] == expected
    target = encoder.target_ids(enc, plan=enc.plan["plan"])
    text = encoder.tokenizer.decode(list(target), skip_special_tokens=True)
    assert text.startswith(f"plan : {expected} . action :")
    assert enc.point == (40, 60)  # the pointer still grounds the target (grounding_point)
    # a target out of view: the phase alone
    hidden = {**frame, "observation.target_point": np.array([-1.0, -1.0], np.float32)}
    if expected.startswith("reach") or reference[0] < 0:
        assert encoder.encode_robot(hidden).plan["plan"] == expected.split()[0]
    # the default plans in words: the data's plan
    words = ExampleEncoder(processor, *load_action_config(tiny_vla_dir),
                           gripper_state_indices=(7, 8))
    assert words.encode_robot(frame).plan["plan"] == frame["plan"]
    with pytest.raises(ValueError, match="cot_plan: expected one of"):
        ExampleEncoder(processor, *load_action_config(tiny_vla_dir), cot_plan="goals")



@pytest.mark.parametrize(("fingers", "closes", "phase", "terminate"), [
    (0.04, 1.0, "reach", 0.0),  # the grasp
    (0.02, 1.0, "bring", 0.0),  # carrying
    (0.02, 0.0, "drop", 0.0),   # the release: opens fingers that hold the object
    (0.04, 0.0, "reach", 0.0),  # open and staying open
    (0.0, 1.0, "done", 1.0),    # the terminating frame
])
def test_waypoint_plans_name_the_goal_position_in_tcp_bins(tiny_vla_parts, tiny_vla_dir,
                                                            fingers, closes, phase, terminate):
    _model, processor = tiny_vla_parts
    encoder = ExampleEncoder(processor, *load_action_config(tiny_vla_dir),
                             gripper_state_indices=(7, 8), cot_plan="waypoint")
    # (0.5, -0.1, 0.1) m in panda_link0 over TCP_POSITION_BOUNDS' 3.9 mm bins
    frame = {**_move_near_frame(fingers, closes, terminate=terminate),
             "observation.goal_position": np.array([0.5, -0.1, 0.1], np.float32)}
    enc = encoder.encode_robot(frame)
    assert enc.plan["plan"] == f"{phase} 128 102 51"
    text = encoder.tokenizer.decode(list(encoder.target_ids(enc, plan=enc.plan["plan"])),
                                    skip_special_tokens=True)
    assert text.startswith(f"plan : {phase} 128 102 51 . action :")
    # outside the bins' box: saturated, as the prompt's tcp position
    far = {**frame, "observation.goal_position": np.array([2.0, -1.0, 0.1], np.float32)}
    assert encoder.encode_robot(far).plan["plan"] == f"{phase} 255 0 51"
    missing = {k: v for k, v in frame.items() if k != "observation.goal_position"}
    with pytest.raises(ValueError, match="expected key 'observation.goal_position'"):
        encoder.encode_robot(missing)
    bad = {**frame, "observation.goal_position": np.array([np.nan, 0.0, 0.1], np.float32)}
    with pytest.raises(ValueError, match="observation.goal_position: tcp_position: expected 3"):
        encoder.encode_robot(bad)



# A Panda pose away from the centre on every axis (radians, panda_joint1..7), then the fingers.
ARM = np.array([0.3, -0.3, 0.1, -2.2, 0.1, 2.0, 0.79])
TCP_STATE = np.concatenate([ARM, [0.025, 0.025]]).astype(np.float32)


@pytest.fixture(scope="module")
def tcp_processor():
    """The tiny VLA's processor with "tcp" in its word-level vocabulary (the trainer adds the
    prompt's words to a tiny model's vocabulary; the session tiny VLA reads it as <unk>)."""
    from rt2_policy.tiny_model import build_processor, build_tokenizer

    processor = build_processor(build_tokenizer(extra_words=("tcp",)))
    assert processor.tokenizer.unk_token_id not in processor.tokenizer("tcp")["input_ids"]
    return processor


def _tcp_bins(joints, tcp_offset=0.13):
    from rt2_policy.prompts import tcp_position_bins
    from rt2_policy.proprioception import panda_tcp_position

    return tcp_position_bins(panda_tcp_position(joints, tcp_offset))


def test_tcp_position_prompt_from_the_arm_joints(tcp_processor, tiny_vla_dir):
    """With ``tcp_position_indices`` the prompt is ``action_prompt(task, None, tcp)``, ``tcp``
    the forward kinematics of the frame's arm joints: ``"…, tcp X Y Z"``."""
    from rt2_policy.proprioception import panda_tcp_position

    with_tcp = ExampleEncoder(tcp_processor, *load_action_config(tiny_vla_dir),
                              tcp_position_indices=range(7))
    plain = ExampleEncoder(tcp_processor, *load_action_config(tiny_vla_dir))
    assert with_tcp.tcp_position_indices == (0, 1, 2, 3, 4, 5, 6) and with_tcp.tcp_offset == 0.13
    frame = {"image": _image(), "task": "pick up the red cube", "action": ACTION,
             "observation.state": TCP_STATE}
    tcp = panda_tcp_position(TCP_STATE[:7], 0.13)
    np.testing.assert_allclose(with_tcp.tcp_position_of(frame), tcp)
    x, y, z = _tcp_bins(TCP_STATE[:7])
    assert len({x, y, z, 128}) == 4  # a pose that tells the axes apart
    enc = with_tcp.encode_robot(frame)
    text = with_tcp.tokenizer.decode(enc.prompt_ids.tolist(), skip_special_tokens=True)
    assert text.endswith(f"pick up the red cube , tcp {x} {y} {z} ? a :"), text
    assert "gripper" not in text
    written = plain.encode_robot({**frame, "task": f"pick up the red cube, tcp {x} {y} {z}"})
    assert torch.equal(enc.prompt_ids, written.prompt_ids)
    reference = tcp_processor(text=[with_image(action_prompt("pick up the red cube", None, tcp))],
                              images=[[_image()]], return_tensors="pt")
    assert torch.equal(enc.prompt_ids, reference["input_ids"][0])
    assert not torch.equal(enc.prompt_ids, plain.encode_robot(frame).prompt_ids)
    assert plain.tcp_position_of(frame) is None  # the default encoder ignores the joints
    assert enc.target_ids == written.target_ids
    # LeRobotDataset frames name it "state"
    renamed = {**{k: v for k, v in frame.items() if k != "observation.state"},
               "state": TCP_STATE}
    assert torch.equal(with_tcp.encode_robot(renamed).prompt_ids, enc.prompt_ids)
    # the indices pick the joints out of the state, the offset moves the tcp
    shuffled = ExampleEncoder(tcp_processor, *load_action_config(tiny_vla_dir),
                              tcp_position_indices=(2, 3, 4, 5, 6, 7, 8))
    padded = {**frame, "observation.state": np.concatenate([[9.0, 9.0], TCP_STATE])}
    assert torch.equal(shuffled.encode_robot(padded).prompt_ids, enc.prompt_ids)
    flange = ExampleEncoder(tcp_processor, *load_action_config(tiny_vla_dir),
                            tcp_position_indices=range(7), tcp_offset=0.0)
    assert _tcp_bins(TCP_STATE[:7], 0.0) != (x, y, z)
    assert tcp_processor.tokenizer.decode(flange.encode_robot(frame).prompt_ids.tolist(),
                                          skip_special_tokens=True).endswith(
        "tcp {} {} {} ? a :".format(*_tcp_bins(TCP_STATE[:7], 0.0)))


def test_tcp_position_after_the_gripper_state(tcp_processor, tiny_vla_dir):
    both = ExampleEncoder(tcp_processor, *load_action_config(tiny_vla_dir),
                          gripper_state_indices=(7, 8), tcp_position_indices=range(7))
    frame = {"image": _image(), "task": "pick up the red cube", "action": ACTION,
             "state": TCP_STATE}  # fingers 3/8 closed → gripper 96
    x, y, z = _tcp_bins(ARM)
    text = both.tokenizer.decode(both.encode_robot(frame).prompt_ids.tolist(),
                                 skip_special_tokens=True)
    assert text.endswith(f"pick up the red cube , gripper 96 , tcp {x} {y} {z} ? a :"), text


def test_tcp_position_errors(tcp_processor, tiny_vla_dir):
    with_tcp = ExampleEncoder(tcp_processor, *load_action_config(tiny_vla_dir),
                              tcp_position_indices=range(7))
    frame = {"image": _image(), "task": "pick up the red cube", "action": ACTION}
    with pytest.raises(ValueError, match="expected key 'state' or 'observation.state'"):
        with_tcp.encode_robot(frame)  # no state
    with pytest.raises(ValueError, match="tcp_position_indices: expected positions < 6"):
        with_tcp.encode_robot({**frame, "observation.state": TCP_STATE[:6]})
    with pytest.raises(ValueError, match="joint_positions: expected 7 finite radians"):
        with_tcp.encode_robot({**frame, "observation.state": np.full(9, np.nan)})
    for indices in (range(6), range(8), (0,)):
        with pytest.raises(ValueError, match="tcp_position_indices: expected the 7 arm joints"):
            ExampleEncoder(tcp_processor, *load_action_config(tiny_vla_dir),
                           tcp_position_indices=indices)
