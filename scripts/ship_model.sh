#!/usr/bin/env bash
# Ship a trained checkpoint as the embedded model `make demo` and `make eval` use:
#   [RT2_TERMINATE_THRESHOLD=P] scripts/ship_model.sh CHECKPOINT_DIR [EVAL_REPORT_DIR]
# Copies the model, processor and action-tokenizer files (not the optimizer/grounding-head
# training state) into src/rt2_policy/models/rt2_tiny_sim (or $RT2_SHIP_DIR), and the
# one-line summary of a `make eval` report beside them (eval_summary.json) for the model card.
# RT2_TERMINATE_THRESHOLD stores the probability of terminate its decode needs to end an
# episode (decoding.terminate_threshold of the action config, rt2_policy.vla_policy.VLAPolicy);
# unset keeps the checkpoint's. Write the card (README.md there) by hand: data, steps,
# mixture, the results table.
set -euo pipefail
SRC=${1:?usage: scripts/ship_model.sh CHECKPOINT_DIR [EVAL_REPORT_DIR]}
DEST=${RT2_SHIP_DIR:-$(dirname "$0")/../src/rt2_policy/models/rt2_tiny_sim}
RUN=$(dirname "$0")/run.sh
FILES=(config.json generation_config.json model.safetensors processor_config.json
       tokenizer.json tokenizer_config.json action_tokenizer_config.json)
if [ -n "${RT2_TERMINATE_THRESHOLD:-}" ]; then  # checked before anything is copied
  "$RUN" python -c "import sys; from rt2_policy.token_mapping import check_terminate_threshold as c
try: c(float(sys.argv[1]))
except ValueError as e: sys.exit(f'RT2_TERMINATE_THRESHOLD: {e}')" "$RT2_TERMINATE_THRESHOLD"
fi
mkdir -p "$DEST"
for f in "${FILES[@]}"; do cp "$SRC/$f" "$DEST/$f"; done
if [ -n "${RT2_TERMINATE_THRESHOLD:-}" ]; then
  "$RUN" python - "$DEST" "$RT2_TERMINATE_THRESHOLD" <<'PY'
import sys
from rt2_policy.token_mapping import load_action_config, save_action_config
save_action_config(sys.argv[1], *load_action_config(sys.argv[1]),
                   terminate_threshold=float(sys.argv[2]))
PY
fi
if [ -n "${2:-}" ]; then  # the summary line `make eval` printed, from its report
  "$RUN" python - "$2/report.json" "$DEST/eval_summary.json" <<'PY'
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
