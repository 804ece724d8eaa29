# rt2 GPU policy server: rt2-serve (rt2_policy.serving) hosting one VLA for many robots over a
# websocket (msgpack + numpy), with dynamic batching. No ROS inside: the robots run the policy
# node with backend:=remote server_uri:=ws://<this host>:8765.
#
#   docker build -f docker/server.Dockerfile -t rt2-server:cu128 \
#     --build-arg TORCH_INDEX_URL=<PyTorch wheel index for CUDA 12.8 (cu128)> .
#   docker run --rm --gpus all -p 8765:8765 -v /path/to/checkpoints:/models \
#     -e RT2_API_KEY=secret rt2-server:cu128 --model /models/rt2 --device cuda:0
#
# Every argument after the image name goes to rt2-serve (`rt2-serve --help`; README "Remote
# inference and serving"). The API key is read from the environment variable RT2_API_KEY, never
# from the command line. GET /healthz answers without a key.
#
# Not built in rt2's CI (no Docker engine, no registry access beyond PyPI/Debian there).
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

ARG DEBIAN_FRONTEND=noninteractive
# The PyTorch wheel index of the image's CUDA; without it pip installs PyPI's default torch build.
ARG TORCH_INDEX_URL=""

RUN apt-get update && apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_DISABLE_PROGRESS_BARS=1

WORKDIR /opt/rt2
COPY requirements/ requirements/
# The versions rt2 is tested with: torch from requirements/torch.txt (as a CUDA build), the
# serving and model stack from requirements/python.txt. Never torchvision.
RUN set -eux; \
    pins() { grep -E "^($1)==" requirements/python.txt; }; \
    torch=$(grep -E '^torch==' requirements/torch.txt); \
    if [ -n "$TORCH_INDEX_URL" ]; then pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "$torch"; \
    else pip install --no-cache-dir "$torch"; fi; \
    pip install --no-cache-dir $(pins 'numpy|transformers|tokenizers|safetensors|huggingface_hub|pillow|msgpack|msgpack-numpy|websockets|PyYAML')

# rt2_policy is pure Python for the server (no ROS imports on the serving path).
COPY src/rt2_policy/rt2_policy/ /opt/rt2/rt2_policy/
ENV PYTHONPATH=/opt/rt2

EXPOSE 8765
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8765/healthz || exit 1
ENTRYPOINT ["python", "-m", "rt2_policy.serving", "--host", "0.0.0.0", "--port", "8765"]
CMD ["--model", "/models/rt2", "--device", "cuda:0"]
