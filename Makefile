# rt2 — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
RUN := scripts/run.sh
# A DDS domain of our own for this run (Linux allows 0-101); discovery stays on loopback.
DOMAIN ?= $(shell echo $$(( ($$$$ % 90) + 10 )))
EPISODES ?= 1
ARGS ?=

.PHONY: setup demo test lint model clean help

help:
	@echo "make demo   set up, then run one episode in the embedded MuJoCo simulator"
	@echo "make test   set up, then run the tests (ruff included)"
	@echo "make setup  only set up (idempotent)"

setup:
	@bash scripts/setup.sh

demo: setup
	@ROS_DOMAIN_ID=$(DOMAIN) HF_HUB_OFFLINE=1 $(RUN) python -m rt2_bringup.demo $(ARGS)

test: setup
	@HF_HUB_OFFLINE=1 $(RUN) python -m pytest $(ARGS)

lint: setup
	@$(RUN) ruff check .

clean:
	rm -rf build install log .cache
