"""Builds the policy a node asked for, importing heavy backends only when they are used.

Backends:
    ``local``: :class:`rt2_policy.vla_policy.VLAPolicy` loaded with ``from_pretrained`` from a
        local directory or a Hugging Face hub id (imports torch and transformers).
    ``scripted``: :class:`rt2_policy.scripted_policy.ScriptedPolicy`, a replay double.
    ``remote``: :class:`rt2_policy.serving.client.RemotePolicy`, a client of ``rt2-serve``
        (imports neither torch nor transformers).
"""

from __future__ import annotations

from collections.abc import Sequence

from rt2_policy.contract import Policy

BACKENDS = ("local", "scripted", "remote")


def make_policy(backend: str, *, model_path: str = "", device: str = "cpu",
                scripted_actions: Sequence[str] = (), scripted_delay: float = 0.0,
                num_threads: int = 0, chain_of_thought: bool = False,
                server_uri: str = "", api_key: str = "",
                request_timeout: float = 0.5, connect_timeout: float = 2.0,
                logger=None, release_at_waypoint: bool = False,
                terminate_threshold: float | None = None) -> Policy:
    """Create a policy.

    Args:
        backend: one of :data:`BACKENDS`.
        model_path: checkpoint directory or hub id (``local``).
        device: torch device string, e.g. ``"cpu"`` or ``"cuda:0"`` (``local``).
        scripted_actions: RT-2 action strings to replay (``scripted``).
        scripted_delay: seconds each scripted ``infer`` takes (``scripted``).
        num_threads: torch intra-op threads for ``local`` on the CPU; 0 keeps torch's default.
            On small CPUs sharing cores with a simulator, 1 is often fastest.
        chain_of_thought: ``local``: plan before acting (RT-2 §4.4, see ``VLAPolicy``).
        server_uri: ``ws://host:port`` of ``rt2-serve`` (``remote``).
        api_key: key sent to the server, "" for none (``remote``).
        request_timeout: deadline of one remote request, seconds (``remote``).
        connect_timeout: deadline of one connection attempt, seconds (``remote``); when the
            server is down the client keeps reconnecting in the background.
        logger: where the remote client logs losses and reconnects (e.g. the node's logger).
        release_at_waypoint: wrap the policy in
            :class:`rt2_policy.waypoint_release.WaypointRelease`: a waypoint plan's carry that
            has arrived opens the gripper (any backend; other actions pass through).
        terminate_threshold: ``local``: probability of terminate the decode needs to end the
            episode, in (0, 1) (``VLAPolicy``); None takes the checkpoint's (0.5, RT-2's greedy
            decode, when it stores none). A remote server applies its own.

    A ``local`` model trained with the episode's grasp memory in its prompt, and every
    ``remote`` client (the served model may read it), come wrapped in
    :class:`rt2_policy.grasp_memory.GraspMemory`, which fills ``Observation.grasped`` from the
    gripper states since the last ``reset()``.

    Raises:
        ValueError: unknown backend or missing model path.
        OSError: the checkpoint cannot be read.
    """
    if backend == "local":
        if not model_path:
            raise ValueError("model_path: expected a checkpoint directory or hub id, got ''")
        import torch

        from rt2_policy.vla_policy import VLAPolicy  # heavy: torch + transformers

        if num_threads < 0:
            raise ValueError(f"num_threads: expected >= 0, got {num_threads}")
        if num_threads:
            torch.set_num_threads(num_threads)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no tqdm bars in node logs

        policy: Policy = VLAPolicy.from_pretrained(model_path, device=device,
                                                   chain_of_thought=chain_of_thought,
                                                   terminate_threshold=terminate_threshold)
    elif backend == "remote":
        from rt2_policy.serving.client import RemotePolicy
        from rt2_policy.serving.config import ClientConfig

        if not server_uri:
            raise ValueError("server_uri: expected ws://host:port of rt2-serve, got ''")
        config = ClientConfig(uri=server_uri, api_key=api_key, request_timeout=request_timeout,
                              connect_timeout=connect_timeout)
        policy = RemotePolicy(config, logger=logger)
    elif backend == "scripted":
        from rt2_policy.scripted_policy import ScriptedPolicy

        policy = ScriptedPolicy(list(scripted_actions), delay=scripted_delay)
    else:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "remote" or getattr(policy, "grasp_memory", False):
        from rt2_policy.grasp_memory import GraspMemory

        policy = GraspMemory(policy)
    if release_at_waypoint:
        from rt2_policy.waypoint_release import WaypointRelease

        policy = WaypointRelease(policy)
    return policy
