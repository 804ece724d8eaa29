"""Command line of the co-fine-tuning trainer: ``python -m rt2_policy.training`` / ``train``.

Example (a fresh tiny model, half robot / half VQA batches, 20 minutes at most)::

    python -m rt2_policy.training --robot-datasets data/demos --vqa-datasets data/vqa \\
        --output-dir runs/tiny --max-steps 4000 --time-budget-min 20 --num-threads 2

Every :class:`~rt2_policy.training.config.TrainConfig` field is a flag (``--help`` lists them);
``--config run.yaml`` loads a file first. Rerunning with the same ``--output-dir`` resumes from
the latest checkpoint. The last line printed is a JSON summary (steps, steps/s, losses, eval
metrics, checkpoint directory). ``--check-config`` validates the settings and prints them as JSON
without reading data or building a model (exit code 2 names the bad value), so a script can
check a run's settings before it spends time making the run's data (``scripts/train_embedded.sh``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (2-core stalls otherwise)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from rt2_policy.training.config import add_arguments, config_from_args  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse flags, train, print the JSON summary; exit code 0, or 2 on a bad configuration."""
    parser = argparse.ArgumentParser(
        prog="train",
        description="Co-fine-tune an RT-2-style VLA on robot episodes (LeRobot format) and "
                    "vision-language examples.",
    )
    add_arguments(parser)
    parser.add_argument("--log-level", default="INFO", help="python logging level")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the settings, print them as JSON and exit (0; 2 on a bad "
                             "value) without reading data, building a model or writing files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_only = args.check_config
    del args.log_level, args.check_config
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    if check_only:
        print(json.dumps(config.to_dict()), flush=True)
        return 0
    if config.is_tiny:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing to download

    from rt2_policy.training.trainer import Trainer

    try:
        result = Trainer(config).train()
    except (ValueError, FileNotFoundError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
