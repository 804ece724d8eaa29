#!/usr/bin/env bash
# Train the embedded model and its robot-data-only ablation from scratch on a 2-core CPU
# machine: scripted demonstrations (LeRobot format), sim VQA data, patch labels, then the two
# runs one after the other, each with its DAgger round (every core each; RT2_SEQUENTIAL=0: side
# by side, 1 torch thread each). About 17 min of data, then 62 min of training for the
# co-fine-tuned model and as much for its ablation (README, "Train -> Status", item 28).
# The co-fine-tuned result is what src/rt2_policy/models/rt2_tiny_sim ships
# (scripts/ship_model.sh; its model card).
#   scripts/run.sh bash scripts/train_embedded.sh [DATA_DIR] [RUNS_DIR]
# Stages are skipped when their output exists, so an interrupted run resumes. Sizes can be
# shrunk for a smoke run: RT2_DEMO_EPISODES, RT2_VQA_SCENES, RT2_POINT_SCENES,
# RT2_PATCH_SCENES, RT2_VISION_PRETRAIN_STEPS, RT2_TRAIN_STEPS, RT2_TRAIN_MINUTES,
# RT2_DAGGER_ROUNDS, RT2_DAGGER_EPISODES, RT2_DAGGER_STEPS, RT2_DAGGER_MINUTES. RT2_PLAN
# (waypoint) trains the waypoint-plan variant, RT2_PLAN=none no plan (stage 3's comment);
# RT2_GRASP_MEMORY (1) adds the episode's grasp memory to every action prompt, 0 does not
# (stage 3's comment). RT2_IMAGE_SIZE (144) and RT2_PATCH_SIZE (18) set the policy image's side
# and the vision patch, pixels (README, "Train -> Status", items 23-25); RT2_SCHEDULE=budget
# fits the learning-rate decay to the time budgets (stage 3's comment); RT2_SEED (0) is the
# training seed: the models' initial weights and batch order (stage 3 --seed RT2_SEED, DAgger
# round r --seed 1000 x RT2_SEED + r), not the data's. RT2_SEQUENTIAL (1) trains the two runs
# one after the other, 0 side by side (stage 3's comment). The defaults are the recipe of the
# shipped model (item 28); RT2_PLAN=none RT2_GRASP_MEMORY=0 RT2_IMAGE_SIZE=96
# RT2_PATCH_SIZE=12 RT2_SEQUENTIAL=0 RT2_DAGGER_EPISODES=600 RT2_DAGGER_STEPS=2000 is the
# recipe before it (item 13). The trainer checks its settings before the first stage. Each
# trainer's log (RUNS_DIR/RUN.log) is appended to, so a resumed recipe keeps the earlier lines.
set -euo pipefail
DATA=${1:-${RT2_ROOT:-.}/.cache/rt2/data}
RUNS=${2:-${RT2_ROOT:-.}/.cache/rt2/runs}
STEPS=${RT2_TRAIN_STEPS:-10000}
SCENES=${RT2_VQA_SCENES:-2000}
EPISODES=${RT2_DEMO_EPISODES:-1600}
PATCH_SCENES=${RT2_PATCH_SCENES:-3000}
PRETRAIN_STEPS=${RT2_VISION_PRETRAIN_STEPS:-1500}
POINT_SCENES=${RT2_POINT_SCENES:-15000}
case "${RT2_PLAN:-waypoint}" in  # checked first: a typo must not cost the data stages
  none) plan_args=(); COF_FRACTION=${RT2_ROBOT_FRACTION:-0.5} ;;
  waypoint) plan_args=(--cot 1 --cot-plan waypoint --grounding-point goal)
            COF_FRACTION=${RT2_ROBOT_FRACTION:-0.66} ;;
  *) echo "RT2_PLAN: expected unset, 'waypoint' or 'none', got '$RT2_PLAN'" >&2; exit 2 ;;
esac
IMAGE=${RT2_IMAGE_SIZE:-144}
PATCH=${RT2_PATCH_SIZE:-18}
case "${RT2_SCHEDULE:-steps}" in  # the learning-rate decay's clock (stage 3's comment)
  steps) schedule_args=() ;;
  budget) schedule_args=(--schedule-to-budget true) ;;
  *) echo "RT2_SCHEDULE: expected unset, 'steps' or 'budget', got '$RT2_SCHEDULE'" >&2; exit 2 ;;
esac
SEED=${RT2_SEED:-0}
[[ "$SEED" =~ ^[0-9]{1,9}$ ]] || {  # 1000 x seed + round stays a bash (64-bit) integer
  echo "RT2_SEED: expected an integer in 0..999999999, got '$SEED'" >&2; exit 2; }
SEED=$((10#$SEED))
case "${RT2_SEQUENTIAL:-1}" in  # side by side on 1 thread each, or one at a time on every core
  0) SEQUENTIAL=0; THREADS=1 ;;
  1) SEQUENTIAL=1; THREADS=$(nproc) ;;
  *) echo "RT2_SEQUENTIAL: expected unset, 0 or 1, got '$RT2_SEQUENTIAL'" >&2; exit 2 ;;
esac
case "${RT2_GRASP_MEMORY:-1}" in
  0) memory_args=() ;;
  1) memory_args=(--grasp-memory true) ;;
  *) echo "RT2_GRASP_MEMORY: expected unset, 0 or 1, got '$RT2_GRASP_MEMORY'" >&2; exit 2 ;;
esac
# Settings every run of this recipe shares (stage 3 and the DAgger rounds of stage 4).
shared=(--batch-size 16 --vision-lr-scale 0.1 --action-label-sigma 3 --grounding-loss-weight 1
        --gripper-state-indices 7 8 --tcp-position-indices 0 1 2 3 4 5 6
        --num-threads "$THREADS" --save-interval 1000 --eval-interval 1000 --progress false)
shared+=("${plan_args[@]}" "${memory_args[@]}" "${schedule_args[@]}")
vqa_data=("$DATA/vqa_seen" "$DATA/vqa_unseen_objects" "$DATA/vqa_unseen_backgrounds"
          "$DATA/vqa_point")
cof_mixture=(--vqa-datasets "${vqa_data[@]}" --robot-fraction "$COF_FRACTION")  # co-fine-tuned runs
rob_mixture=(--robot-fraction 1.0)  # the robot-only runs (the ablation)
# Stage 3's settings (its comment below); the patch labels' file is added once the grid is known.
common=("${shared[@]}" --model tiny --tiny.image-size "$IMAGE" --tiny.patch-size "$PATCH"
        --tiny.image-position suffix --tiny.words-files "$DATA/instruction_words.txt"
        --robot-datasets "$DATA/demos" --max-steps "$STEPS"
        --vision-pretrain-steps "$PRETRAIN_STEPS"
        --learning-rate 5e-4 --warmup-steps 300 --cache-mb 4200 --seed "$SEED"
        --time-budget-min "${RT2_TRAIN_MINUTES:-52}")
DAGGER_STEPS=${RT2_DAGGER_STEPS:-3000}
dagger_args() {  # dagger_args ROUND: stage 4's settings of a round (its comment below)
  round_args=("${shared[@]}" --learning-rate 2e-4 --warmup-steps 100 --cache-mb 6000
              --seed $((1000 * SEED + $1)) --time-budget-min "${RT2_DAGGER_MINUTES:-20}")
}
# The trainer validates both stages' settings before any stage runs (a bad value must not cost
# the data stages; e.g. the image a multiple of 2 x the patch, the connector's pixel shuffle).
settings=$(python -m rt2_policy.training --check-config "${common[@]}" \
  --output-dir "$RUNS/cofinetuned" "${cof_mixture[@]}") || exit 2
dagger_args 1
python -m rt2_policy.training --check-config "${round_args[@]}" --model "$RUNS/cofinetuned" \
  --robot-datasets "$DATA/demos" --max-steps "$DAGGER_STEPS" "${cof_mixture[@]}" > /dev/null || exit 2
GRID=$(python -c 'import json, sys; t = json.loads(sys.argv[1])["tiny"]
print(t["image_size"] // t["patch_size"])' "$settings")  # patches a side: the labels' grid
if (( GRID == 8 )); then PATCH_LABELS="$DATA/patch_labels.npz"
else PATCH_LABELS="$DATA/patch_labels_${GRID}x${GRID}.npz"; fi
common+=(--vision-pretrain-data "$PATCH_LABELS")
mkdir -p "$DATA" "$RUNS"

# 1. Demonstrations: 1600 expert episodes (4 families in rotation, seen split, seeds 0..1599,
#    DART noise 6 mm/step on half of them); only successful episodes are kept.
[ -f "$DATA/demos/meta/info.json" ] ||
  python -m rt2_sim.generate_demos --output "$DATA/demos" --episodes "$EPISODES" --seed 0 --workers 2
# 2. Vision-language data from sim scenes (stands in for web VQA): seen scenes, plus scenes with
#    the held-out objects and backgrounds (web data knows objects robot data never touched).
#    Half the scenes show the arm posed over the workspace; questions include pointing at
#    objects and at the gripper ("x y" as integer tokens, like PaLI-X's detection outputs).
vqa() {  # vqa NAME SCENES SEED SPLIT
  [ -f "$DATA/$1/vqa.jsonl" ] || python -m rt2_sim.vqa_generation --output "$DATA/$1" \
    --scenes "$2" --per-scene 8 --seed "$3" --split "$4" --arm-pose-rate 0.5
}
vqa vqa_seen "$SCENES" 0 seen &
vqa vqa_unseen_objects $((SCENES / 4)) 200000 unseen_objects
vqa vqa_unseen_backgrounds $((SCENES / 4)) 300000 unseen_backgrounds
wait
# 2a. Pointing at objects named in plain words (no synonyms), for the grounding loss: about
#     1.5 questions per scene, 15,000 scenes by default (about 4 min).
[ -f "$DATA/vqa_point/vqa.jsonl" ] || python -m rt2_sim.vqa_generation --output "$DATA/vqa_point" \
  --scenes "$POINT_SCENES" --per-scene 8 --seed 50000 --synonym-rate 0 --arm-pose-rate 0.5 \
  --kinds point
python -c "from rt2_sim.tasks import instruction_vocabulary as v; print('\n'.join(v()))" > "$DATA/instruction_words.txt"
# 2b. What covers each patch (object colour, arm, background) in 3,000 more scenes, from
#     MuJoCo's segmentation: the vision tower is pre-trained on it before co-fine-tuning.
#     One cell per patch of the policy image (8 x 8 at 144 px with 18 px patches).
[ -f "$PATCH_LABELS" ] || python -m rt2_sim.patch_labels --output "$PATCH_LABELS" \
  --scenes "$PATCH_SCENES" --seed 10000 --grid "$GRID"

# 3. Two runs, same steps: co-fine-tuned (50 % robot, RT-2-PaLI-X) and robot data only. Each
#    first pre-trains the vision tower on the patch labels (1,500 steps, ~7 min); then the tower
#    and connector learn 10x slower than the decoder (at the full rate their output collapses to
#    one constant massive activation; see README, "Train -> Status"). The image follows the text
#    so its tokens can attend to the instruction, and a pointer loss over the image tokens
#    (--grounding-loss-weight) teaches them which one holds the named object: on pointing
#    questions and on every demonstration frame (its observation.target_point). The frames
#    also record the reference object's point (observation.reference_point); a second pointer
#    on it (--reference-grounding-loss-weight 1) was tried and is off: the tokens learned where
#    the reference is (98–100 % of evaluation frames), but the models still did not carry the
#    object there, and grasped less often (README, "Train -> Status", item 10).
#    Every action prompt carries the gripper state, from the finger joints (positions 7 and 8
#    of observation.state; the policy node reads them from /joint_states): at 96 px the camera
#    cannot show whether the fingers hold the object (README, "Train -> Status").
#    A plan before every action (RT-2 §4.4's chain of thought) was tried and is off:
#    with the destination as an image point (--cot 1 --cot-plan goal) the step followed the
#    point as a fixed direction, not relative to the gripper (README, "Train -> Status", item
#    14); with where the expert heads the tcp, in the prompt's tcp bins (--cot-plan waypoint,
#    and 66 % robot data for the co-fine-tuned run), the step follows the plan, but the model
#    ends most pushes with a terminate at the first step, and scored 14 % seen (item 15); a
#    plan phase "done" on terminating frames (now part of such plans) did not change that
#    (item 16: the early terminates mark episodes that were failing anyway); nor did a phase
#    "drop" on release frames (item 18: 22 % co-fine-tuned, 32 % robot data only; the model
#    lets go right after grasping, not over the destination).
#    RT2_PLAN=waypoint (the default) trains that plan variant (--cot 1 --cot-plan waypoint
#    --grounding-point goal, 66 % robot data for the co-fine-tuned run): with the expert's
#    lift-point labels on a grasp's settling steps and the policy node's release gate, its
#    robot-only model scored 46-50 % seen (item 19, fine-tuned from item 18's models on relabelled
#    data). From scratch with those labels and RT2_GRASP_MEMORY=1 at RT2_IMAGE_SIZE=144, its
#    co-fine-tuned run alone scored 34 % (12 px patches) and 40 % (RT2_PATCH_SIZE=18) seen in
#    the 90-min budget (item 25; the robot-only run not trained, DAgger driven by itself); as
#    this script runs it with RT2_SCHEDULE=budget, 26 % (robot-only twin 30 %, item 26), and
#    24 % over three training seeds (RT2_SEED 0-2, item 27); with RT2_SEQUENTIAL=1 (below), the
#    step clock, RT2_DAGGER_EPISODES=300 and RT2_DAGGER_STEPS=3000 (this script's defaults
#    since), 42 % in 62 min (item 28): the shipped model. RT2_PLAN=none, no plan: 32 % seen
#    (item 13, the model shipped before it).
#    RT2_ROBOT_FRACTION sets the co-fine-tuned run's share of robot data (RT-2: 50-66 %).
#    RT2_GRASP_MEMORY=1 (the default) ends every action prompt with the episode's grasp
#    memory (", grasp 1" once the fingers have held something for 3 frames; --grasp-memory
#    true): fine-tuned into item 19's robot-only plan model with a second DAgger round, it
#    doubled move near's successes and lost pick's, 47 of 100 seen episodes against 49 without
#    (README, "Train -> Status", item 21); from scratch, see RT2_PLAN above.
#    RT2_SCHEDULE=budget decays the learning rate over the minutes as well as the steps
#    (--schedule-to-budget true): the cosine ends where RT2_TRAIN_MINUTES / RT2_DAGGER_MINUTES
#    stop the run if that comes before the steps (side by side, stage 3 stops at about 2/3 of
#    its 10,000-step cosine, README "Train -> Status", item 25; alone, it reaches the 10,000
#    steps after 39 of its 52 minutes, item 28).
#    RT2_SEQUENTIAL=1 (the default) trains the co-fine-tuned run first (stage 3 and its DAgger
#    rounds, each round driven by its own previous model), then the robot-only ablation on the
#    same data, each alone with one torch thread per core and OMP_WAIT_POLICY=ACTIVE for the
#    trainer only (spinning threads; the data stages and DAgger episodes keep PASSIVE): on 2
#    cores a run gets 1.75 x the steps it gets beside its twin in the same minutes in `python -m
#    benchmarks.train_bench` (README "Train -> Status", item 27), 2.4 x in stage 3 (item 28).
pids=()
train() {  # train LOG TRAINER_ARGS...: one trainer run, in the background when side by side
  if (( SEQUENTIAL )); then
    OMP_WAIT_POLICY=ACTIVE python -m rt2_policy.training "${@:2}" >> "$1" 2>&1
    tail -n 1 "$1"
  else
    python -m rt2_policy.training "${@:2}" >> "$1" 2>&1 &
    pids+=($!)
  fi
}
finish() {  # finish LOG...: wait for the side-by-side runs (a failed one fails the recipe)
  local pid; for pid in "${pids[@]}"; do wait "$pid"; done; pids=()
  tail -n 1 "$@"
}
stage3() {  # stage3 RUN MIXTURE_ARGS...: stage 3 of one run
  train "$RUNS/$1.log" "${common[@]}" --output-dir "$RUNS/$1" "${@:2}"
}

# 4. DAgger (Ross et al., 2011), RT2_DAGGER_ROUNDS rounds: the co-fine-tuned model of the
#    previous round drives RT2_DAGGER_EPISODES (300) seen episodes (seeds 80,000 + 20,000 x
#    round; the expert's action is executed on 30 % of the steps), the expert labels every frame
#    the policy reaches; then the run continues from its previous round on the demos plus all
#    DAgger data so far, RT2_DAGGER_STEPS (3,000) more steps (lr 2e-4, new warm-up and cosine).
#    The robot-only run comes later and reuses those episodes, so the ablation still differs
#    only in the VQA mixture. One round by default: vision pre-training, stage 3 and one round
#    took 62 min of training for the shipped model, within its 90-min budget (item 28).
#    With RT2_SEQUENTIAL=0 the robot-only model of the previous round drives instead, and both
#    runs go on side by side to the same total step count.
ROUNDS=${RT2_DAGGER_ROUNDS:-1}
DAGGER_EPISODES=${RT2_DAGGER_EPISODES:-300}
steps_of() {  # steps_of RUN_DIR -> the step of its latest checkpoint (counted from that run's start)
  local name; name=$(basename "$(readlink -f "$1/latest")"); echo $((10#${name#checkpoint-}))
}
dagger_data() {  # dagger_data ROUND DRIVER_RUN: the round's episodes, driven by DRIVER_RUN's model
  [ -f "$DATA/dagger$1/meta/info.json" ] || python -m rt2_sim.generate_demos \
    --output "$DATA/dagger$1" --episodes "$DAGGER_EPISODES" --seed $((80000 + 20000 * $1)) \
    --workers 2 --policy "$(readlink -f "$2/latest")" --expert-share 0.3 --max-steps 60
}
train_round() {  # train_round RUN ROUND FROM_RUN MAX_STEPS MIXTURE_ARGS...: one run's round
  dagger_args "$2"; round_args+=(--robot-datasets "${robot_data[@]}")
  train "$RUNS/$1_dagger$2.log" "${round_args[@]}" --model "$(readlink -f "$3/latest")" \
    --max-steps "$4" --output-dir "$RUNS/$1_dagger$2" "${@:5}"
}
alone() {  # alone RUN LABEL MIXTURE_ARGS...: one run's stage 3 and rounds (RT2_SEQUENTIAL=1)
  local run=$1 label=$2 prev="$RUNS/$1" steps round
  stage3 "$run" "${@:3}"
  steps=$(steps_of "$prev"); robot_data=("$DATA/demos")
  for round in $(seq 1 "$ROUNDS"); do
    dagger_data "$round" "$prev"  # made by the first run to get here: the co-fine-tuned one
    robot_data+=("$DATA/dagger$round")
    train_round "$run" "$round" "$prev" "$DAGGER_STEPS" "${@:3}"
    prev="$RUNS/${run}_dagger$round"; steps=$((steps + $(steps_of "$prev")))
    echo "round $round: $steps steps ($label)"
  done
}
if (( SEQUENTIAL )); then
  alone cofinetuned co-fine-tuned "${cof_mixture[@]}"
  alone robot_only "robot data only" "${rob_mixture[@]}"
else
  stage3 cofinetuned "${cof_mixture[@]}"; stage3 robot_only "${rob_mixture[@]}"
  finish "$RUNS/cofinetuned.log" "$RUNS/robot_only.log"
  # Steps each model has been trained so far: every round's run counts from 0 again.
  prev_cof="$RUNS/cofinetuned"; prev_rob="$RUNS/robot_only"; robot_data=("$DATA/demos")
  done_cof=$(steps_of "$prev_cof"); done_rob=$(steps_of "$prev_rob")
  for round in $(seq 1 "$ROUNDS"); do
    dagger_data "$round" "$prev_rob"; robot_data+=("$DATA/dagger$round")
    total=$(( (done_cof > done_rob ? done_cof : done_rob) + DAGGER_STEPS ))
    train_round cofinetuned "$round" "$prev_cof" $((total - done_cof)) "${cof_mixture[@]}"
    train_round robot_only "$round" "$prev_rob" $((total - done_rob)) "${rob_mixture[@]}"
    finish "$RUNS/cofinetuned_dagger$round.log" "$RUNS/robot_only_dagger$round.log"
    prev_cof="$RUNS/cofinetuned_dagger$round"; prev_rob="$RUNS/robot_only_dagger$round"
    done_cof=$((done_cof + $(steps_of "$prev_cof")))
    done_rob=$((done_rob + $(steps_of "$prev_rob")))
    echo "round $round: $done_cof steps (co-fine-tuned), $done_rob steps (robot data only)"
  done
fi
last() {  # last RUN: its final round's directory (stage 3's without rounds)
  if (( ROUNDS )); then echo "$RUNS/$1_dagger$ROUNDS"; else echo "$RUNS/$1"; fi
}
echo "final models: $(readlink -f "$(last cofinetuned)/latest") (co-fine-tuned)," \
  "$(readlink -f "$(last robot_only)/latest") (robot data only)"
