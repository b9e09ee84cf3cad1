# pixcolor: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data
SPLIT ?= demo
IMAGENET_VAL ?=
DEVICE ?= cpu
RUNS ?= runs

.PHONY: help venv demo-data bench test test-matrix test-postgres serve load-test speed report-speed lint clean browser

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch pinned: on these machines 2.13.0 resolves to a CPU build already on disk.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# The reference implementations the FID/KID and LPIPS tests compare against. Both depend on
	# torchvision, whose PyPI wheels pull CUDA torch: installed without dependencies (the
	# tests load their modules from their files, with torchvision stubbed).
	$(PY) -m pip install -q --no-deps torch-fidelity==0.4.0 lpips==0.1.4
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project (only when needed)

demo-data: $(STAMP) ## prepare the embedded demo photos into $(DATA)/demo
	$(PY) -m bench.demo prepare --out $(DATA)/demo

bench: $(STAMP) ## run the benchmark on the demo data (or IMAGENET_VAL=... SPLIT=ctest10k DEVICE=cuda)
	$(PY) -m bench run --data $(DATA) --split $(SPLIT) --runs $(RUNS) --device $(DEVICE) $(if $(IMAGENET_VAL),--imagenet-val $(IMAGENET_VAL))

test: $(STAMP) browser ## run the whole test suite
	$(PY) -m pytest -q

test-matrix: $(STAMP) browser ## the suite under 1/2 threads, torch's scalar/AVX2 kernels and the lowest SIMD (scripts/test_matrix.sh)
	bash scripts/test_matrix.sh

test-postgres: $(STAMP) browser ## the test suite with the VTT database tests also on a local PostgreSQL (CI does this)
	VTT_TEST_POSTGRES_URL=$$(bash scripts/start_postgres.sh) $(PY) -m pytest -q

serve: $(STAMP) ## the VTT app in production: gunicorn + PostgreSQL (scripts/serve.sh)
	bash scripts/serve.sh

load-test: $(STAMP) ## 200 simulated raters at a human pace against gunicorn + PostgreSQL (scripts/vtt_load.py)
	$(PY) scripts/vtt_load.py --raters 200 --pace 3.5 --duration 120 --ramp 30 --images 600 \
		--database-url "$${DATABASE_URL:-$$(bash scripts/start_postgres.sh vtt_load)}"

speed: $(STAMP) ## naive vs cached sampling speed and end-to-end seconds (tools/sampling_speed.py)
	$(PY) -m tools.sampling_speed --device $(DEVICE)

report-speed: $(STAMP) ## time analysis/report.py on 250 and 500 generated images (tools/report_speed.py)
	$(PY) -m tools.report_speed

browser: ## install Debian chromium for the browser tests (idempotent)
	bash scripts/install_browser.sh

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .

clean: ## remove caches and generated outputs (keeps .venv)
	rm -rf $(RUNS) .pytest_cache build *.egg-info
