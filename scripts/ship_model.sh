#!/usr/bin/env bash
# Ship a trained checkpoint as the embedded model `make demo` and `make eval` use:
#   scripts/ship_model.sh CHECKPOINT_DIR [EVAL_REPORT_DIR]
# Copies the model, processor and action-tokenizer files (not the optimizer/grounding-head
# training state) into src/rt2_policy/models/rt2_tiny_sim, and the one-line summary of a
# `make eval` report beside them (eval_summary.json) for the model card. Write the card
# (README.md there) by hand: data, steps, mixture, the results table.
set -euo pipefail
SRC=${1:?usage: scripts/ship_model.sh CHECKPOINT_DIR [EVAL_REPORT_DIR]}
DEST=$(dirname "$0")/../src/rt2_policy/models/rt2_tiny_sim
FILES=(config.json generation_config.json model.safetensors processor_config.json
       tokenizer.json tokenizer_config.json action_tokenizer_config.json)
mkdir -p "$DEST"
for f in "${FILES[@]}"; do cp "$SRC/$f" "$DEST/$f"; done
if [ -n "${2:-}" ]; then  # the summary line `make eval` printed, from its report
  "$(dirname "$0")/run.sh" python - "$2/report.json" "$DEST/eval_summary.json" <<'PY'
import json, sys
from rt2_bringup.evaluation import summary_line
report = json.load(open(sys.argv[1]))
summary = json.loads(summary_line(report, sys.argv[1]))
del summary["report"]  # a path on the machine that ran it
summary["git_commit"] = report["config"].get("git_commit")
json.dump(summary, open(sys.argv[2], "w"), indent=1)
PY
fi
du -sh "$DEST"
