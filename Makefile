# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Both set up the project-local environment first (idempotent, ~3 min the first time).
.PHONY: setup demo test test-all

setup:
	@bash tools/setup_env.sh

demo:
	@bash tools/run_timed.sh demo

test:
	@bash tools/run_timed.sh test

test-all:
	@bash tools/run_timed.sh test-all
