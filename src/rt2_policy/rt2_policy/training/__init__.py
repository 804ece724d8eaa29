"""Co-fine-tuning of RT-2-style VLAs on robot episodes and vision-language data (RT-2 §3.2).

``python -m rt2_policy.training --robot-datasets DIR --vqa-datasets DIR --output-dir OUT`` (or the
``train`` console script) runs :class:`rt2_policy.training.trainer.Trainer` with a
:class:`rt2_policy.training.config.TrainConfig`. Modules: ``config`` (settings), ``mixture``
(robot/VQA batch mixing), ``collate`` (prompts, targets, label masking, batching), ``cot``
(chain-of-thought plans, RT-2 §4.4), ``sources`` (dataset opening), ``trainer`` (the loop,
checkpoints, metrics). Importing this package imports neither torch nor transformers.
"""
