# rt2 — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
RUN := scripts/run.sh
# A DDS domain of our own for this run (Linux allows 0-101); discovery stays on loopback.
DOMAIN ?= $(shell echo $$(( ($$$$ % 90) + 10 )))
EPISODES ?= 1
# make eval: ROS graphs run in parallel (worker processes, each on its own ROS domain).
JOBS ?= 2
ARGS ?=

.PHONY: setup demo eval bench train test lint model clean help

help:
	@echo "make demo   set up, then run one episode in the embedded MuJoCo simulator"
	@echo "make eval   set up, then evaluate the policy on every split (EPISODES=N per split, default 50; JOBS=2 graphs in parallel)"
	@echo "make bench  set up, then benchmark decode, node overhead and serving (ARGS=--quick)"
	@echo "make train  set up, then generate demos + VQA data and train the model and its ablation"
	@echo "make test   set up, then run the tests (ruff included)"
	@echo "make setup  only set up (idempotent)"

setup:
	@bash scripts/setup.sh

demo: setup
	@ROS_DOMAIN_ID=$(DOMAIN) HF_HUB_OFFLINE=1 $(RUN) python -m rt2_bringup.demo $(ARGS)

# Success rates per split x task family over ROS (sim + policy nodes); EPISODES per split, JOBS
# graphs in parallel.
eval: EPISODES = 50
eval: setup
	@ROS_DOMAIN_ID=$(DOMAIN) HF_HUB_OFFLINE=1 $(RUN) python -m rt2_bringup.evaluate --episodes $(EPISODES) --jobs $(JOBS) $(ARGS)

# Decode / policy-node / serving benchmarks; the last line printed is a JSON summary.
bench: setup
	@ROS_DOMAIN_ID=$(DOMAIN) HF_HUB_OFFLINE=1 $(RUN) python -m benchmarks.run $(ARGS)

# Demonstrations, sim VQA data, then the co-fine-tuned model and its robot-data-only ablation
# (scripts/train_embedded.sh; data and runs under .cache/rt2, stages resume when interrupted).
train: setup
	@HF_HUB_OFFLINE=1 $(RUN) bash scripts/train_embedded.sh $(ARGS)

test: setup
	@HF_HUB_OFFLINE=1 $(RUN) python -m pytest $(ARGS)

lint: setup
	@$(RUN) ruff check .

clean:
	rm -rf build install log .cache
