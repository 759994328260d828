# Two commands on a fresh machine: `make demo` (the pipeline on the bundled sample) and
# `make test` (the whole test suite). Both create .venv and install on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= cpu
WEIGHTS ?= none
DATASET ?= chest_xray
DATA_DIR ?=
NOTEBOOKS ?=

.PHONY: install lock demo run lab sync-notebooks lint test app tensorboard browser benchmarks gpu-check clean-outputs

install: $(VENV)/.installed

# The exact versions of requirements-lock.txt (make lock); requirements.txt keeps the ranges
# that Colab and conda install from (docs/running.md, "Installing").
$(VENV)/.installed: requirements-lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements-lock.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# Regenerate requirements-lock.txt from requirements.txt (Linux, CPython 3.11, CPU). pip-compile,
# not uv: it resolves with pip itself (pip's indexes, find-links and wheel choice, as make
# install), but skips the constraint files pip's configuration names, so those are passed on.
# Pins that still fit requirements.txt are kept; UPGRADE=1 moves every pin to the newest release.
LOCK_TOOLS ?= /tmp/pip-tools-venv
PIP_CONSTRAINTS ?= $(shell $(PYTHON) -m pip config list 2>/dev/null \
	| sed -n "s/^[^=]*\.constraint='\(.*\)'$$/\1/p")
lock:
	test -x $(LOCK_TOOLS)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_TOOLS) \
		&& $(LOCK_TOOLS)/bin/python -m pip install -q pip==26.3 pip-tools==7.7.0; }
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOLS)/bin/pip-compile --quiet $(if $(UPGRADE),--upgrade) \
		--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
		$(foreach file,$(PIP_CONSTRAINTS),--constraint $(file)) \
		--output-file requirements-lock.txt requirements.txt

# The bundled sample, offline: ImageNet weights need a download, so the demo trains from
# random weights (the scratch protocol) unless you say WEIGHTS=imagenet. Its scenario grid
# (notebook 06) sets the thesis' GAN scenario beside class weights, the cheapest balancing;
# SCENARIOS=all runs all seven.
SCENARIOS ?= baseline,wgan,weighted
demo: install
	$(BIN)/python -m helpers.notebook.run --dataset chest_xray --profile demo -p WEIGHTS=$(WEIGHTS) \
		-p SCENARIOS=$(SCENARIOS)

# Any data set: make run DATASET=brain_tumor DATA_DIR=/path PROFILE=cpu WEIGHTS=imagenet
run: install
	$(BIN)/python -m helpers.notebook.run --dataset $(DATASET) --data-dir "$(DATA_DIR)" --profile $(PROFILE) \
		$(if $(NOTEBOOKS),--notebooks $(NOTEBOOKS)) -p WEIGHTS=$(WEIGHTS)

# JupyterLab on the series: the notebooks' "python3" kernel is this environment's Python,
# the one papermill runs them with, so a notebook run cell by cell gives the headless results.
lab: install
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# After a change of REPOSITORY or BRANCH in helpers/notebook/colab.py: rewrite every Colab badge (the
# README's too), the Colab parameters and the setup cell of every notebook.
sync-notebooks: install
	$(BIN)/python -m helpers.notebook.contract

# ruff on the whole repository, rules in pyproject.toml ([tool.ruff]); make test runs it first.
lint: install
	$(BIN)/ruff check .

test: install browser lint
	$(BIN)/python tests/run_suites.py

# The Streamlit page on http://localhost:8501: the trained runs under ROOT (default: the
# repository), a model card, uploads, probability, label and Grad-CAM.
ROOT ?=
app: install
	APP_ROOT="$(ROOT)" $(BIN)/python -m streamlit run app/streamlit_app.py \
		--server.headless true --browser.gatherUsageStats false

# TensorBoard on http://localhost:6006 (another with PORT=...): the training curves of every
# run under ROOT (default: the repository), side by side; reachable from this machine only.
PORT ?= 6006
tensorboard: install
	$(BIN)/tensorboard --logdir "$(or $(ROOT),$(CURDIR))/results" --host localhost --port $(PORT)

# Debian's headless Chromium and its driver for the browser test (tests/app/test_app_browser.py),
# installed with apt-get where it may; without them that test is skipped and says why.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium chromium-driver >/dev/null; } \
		|| echo "chromium and chromium-driver not installed (needs root and apt-get): the browser test will be skipped"

# Preprocessing throughput, the torch input pipeline / training step (bundled sample
# unless DATA_DIR names a data set folder) and the real training epoch of Keras and PyTorch
# (random images, BENCH_SIZE px, default 64).
BENCH_SIZE ?= 64
benchmarks: install
	$(BIN)/python benchmarks/bench_preprocessing.py --dataset $(DATASET) \
		--data-dir "$(or $(DATA_DIR),data/sample/chest_xray)"
	$(BIN)/python benchmarks/bench_torch_pipeline.py
	$(BIN)/python benchmarks/bench_training.py --size $(BENCH_SIZE)

# One GPU, at most about 8 minutes: input pipeline, training epoch and WGAN-GP at the full
# profile's sizes, and the estimated hours of notebooks 03-07 (a CPU smoke without a GPU).
gpu-check: install
	$(BIN)/python benchmarks/gpu_check.py

clean-outputs:
	rm -rf data/raw data/splits data/processed data/synthetic results/*/ checkpoints/*/
