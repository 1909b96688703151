# One command per step. `make test` works on a fresh clone with only Python + pip.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install test test-full test-fast test-recipes lint demo clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,jax]"
	touch $(STAMP)

install: $(STAMP)

# The whole suite, slow tests included (this is what CI runs).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=30 $(PYTEST_ARGS) tests

# Every test: CI's suite, and those it leaves to a stand-in for time (KZOO_FULL:
# kzoo.testing.tiers.full_only; every recipe resumed; the slow JAX model tests).
test-full: $(STAMP)
	KZOO_FULL=1 KZOO_ALL_RECIPES=1 KZOO_JAX_SLOW=1 $(BIN)/python -m pytest -n 2 \
	    --dist loadgroup --durations=30 $(PYTEST_ARGS) tests

# Every shipped recipe interrupted mid-epoch and resumed (CI resumes one of each kind).
test-recipes: $(STAMP)
	KZOO_ALL_RECIPES=1 $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS) \
	    tests/training/test_resume_recipes.py

# Static checks (ruff, configured in pyproject.toml); CI runs it before the tests.
lint: $(STAMP)
	$(BIN)/ruff check kzoo tests benchmarks scripts setup.py
	$(BIN)/ruff format --check kzoo tests benchmarks scripts setup.py

# Local loop: skips tests marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS) tests

# The main job: train gpt_tiny on the built-in corpus, export it for TF Serving,
# check the export as TF Serving loads it, and generate through the SavedModel.
# Re-running replaces the demo's own outputs (runs/gpt_tiny, saved_models/gpt_tiny/1).
DEMO_RUN := runs/gpt_tiny
DEMO_EXPORT := saved_models/gpt_tiny/1
demo: $(STAMP)
	rm -rf $(DEMO_RUN)
	$(BIN)/kzoo train recipes/gpt_tiny.yaml --run-dir $(DEMO_RUN)
	$(BIN)/kzoo evaluate $(DEMO_RUN)
	$(BIN)/kzoo export $(DEMO_RUN) --out saved_models --name gpt_tiny --version 1 --overwrite
	$(BIN)/kzoo check-serving $(DEMO_EXPORT)
	$(BIN)/kzoo generate $(DEMO_EXPORT) --prompt "zo" --prompt "" --max-new-tokens 40 \
	    --strategy sample --temperature 0.9 --seed 1
	@echo
	@echo "TensorBoard:  $(BIN)/tensorboard --logdir $(DEMO_RUN)/tensorboard --host 127.0.0.1"
	@echo "TF Serving:   docker run -p 8501:8501 -v $$PWD/saved_models:/models \\"
	@echo "                tensorflow/serving --model_config_file=/models/models.config"
	@echo "Request:      curl -d @$(DEMO_EXPORT)/assets.extra/example_requests/generate.json \\"
	@echo "                http://localhost:8501/v1/models/gpt_tiny:predict"

clean:
	rm -rf build *.egg-info .pytest_cache
