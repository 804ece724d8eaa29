#!/usr/bin/env bash
# Reproduce the embedded model (src/rt2_policy/models/rt2_tiny_sim) and its robot-data-only
# ablation from scratch on a 2-core CPU machine: scripted demonstrations (LeRobot format),
# sim VQA data, then two co-fine-tuning runs in parallel (1 torch thread each).
#   scripts/run.sh bash scripts/train_embedded.sh [DATA_DIR] [RUNS_DIR]
# Stages are skipped when their output exists, so an interrupted run resumes.
set -euo pipefail
DATA=${1:-${RT2_ROOT:-.}/.cache/rt2/data}
RUNS=${2:-${RT2_ROOT:-.}/.cache/rt2/runs}
STEPS=${RT2_TRAIN_STEPS:-10000}
mkdir -p "$DATA" "$RUNS"

# 1. Demonstrations: 1200 expert episodes (4 families in rotation, seen split, seeds 0..1199,
#    DART noise 6 mm/step on half of them); only successful episodes are kept.
[ -f "$DATA/demos/meta/info.json" ] ||
  python -m rt2_sim.generate_demos --output "$DATA/demos" --episodes 1200 --seed 0 --workers 2
# 2. Vision-language data from sim scenes (stands in for web VQA): seen scenes, plus scenes with
#    the held-out objects and backgrounds (web data knows objects robot data never touched).
[ -f "$DATA/vqa_seen/vqa.jsonl" ] ||
  python -m rt2_sim.vqa_generation --output "$DATA/vqa_seen" --scenes 1200 --per-scene 8 --seed 0 --split seen
[ -f "$DATA/vqa_unseen_objects/vqa.jsonl" ] ||
  python -m rt2_sim.vqa_generation --output "$DATA/vqa_unseen_objects" --scenes 400 --per-scene 8 --seed 200000 --split unseen_objects
[ -f "$DATA/vqa_unseen_backgrounds/vqa.jsonl" ] ||
  python -m rt2_sim.vqa_generation --output "$DATA/vqa_unseen_backgrounds" --scenes 400 --per-scene 8 --seed 300000 --split unseen_backgrounds
python -c "from rt2_sim.tasks import instruction_vocabulary as v; print('\n'.join(v()))" > "$DATA/instruction_words.txt"

# 3. Two runs, same steps: co-fine-tuned (50 % robot, RT-2-PaLI-X) and robot data only.
common=(--model tiny --tiny.image-size 96 --tiny.words-files "$DATA/instruction_words.txt"
        --robot-datasets "$DATA/demos" --max-steps "$STEPS" --batch-size 16
        --learning-rate 1e-3 --warmup-steps 200 --num-threads 1 --cache-mb 4000 --seed 0
        --save-interval 1000 --eval-interval 1000 --time-budget-min 85 --progress false)
python -m rt2_policy.training "${common[@]}" --output-dir "$RUNS/cofinetuned" \
  --vqa-datasets "$DATA/vqa_seen" "$DATA/vqa_unseen_objects" "$DATA/vqa_unseen_backgrounds" \
  --robot-fraction 0.5 > "$RUNS/cofinetuned.log" 2>&1 &
cofinetuned=$!
python -m rt2_policy.training "${common[@]}" --output-dir "$RUNS/robot_only" \
  --robot-fraction 1.0 > "$RUNS/robot_only.log" 2>&1 &
robot_only=$!
wait $cofinetuned; wait $robot_only
tail -n 1 "$RUNS/cofinetuned.log" "$RUNS/robot_only.log"
