# AI Factory Twin — developer entry points. `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTO_OUT := libs/twin-proto/src
PROTOS := $(shell find protos -name '*.proto' | sort)
# Every library and service is its own distribution; a new services/<name>/pyproject.toml joins here.
MEMBERS := libs/twin-proto libs/twin-core libs/twinctl $(patsubst %/pyproject.toml,%,$(sort $(wildcard services/*/pyproject.toml)))

.PHONY: install run test test-unit lint proto proto-check bench validate-collectives validate-holdout validate-moe validate-scale validate-power validate-training validate-cooling fuzz chaos up down clean

$(STAMP): pyproject.toml requirements.lock $(addsuffix /pyproject.toml,$(MEMBERS))
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip uninstall -q -y ai-factory-twin 2>/dev/null || true  # the old single distribution
	$(PY) -m pip install -q --no-deps $(addprefix -e ,$(MEMBERS))
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m twin.core.stack

# The README's test command (and CI's): static checks first, then every test tier.
test: lint proto-check
	$(PY) -m pytest tests

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit tests/contract

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m twin.core.importrules

proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) \
		--grpc_python_out=$(PROTO_OUT) $(PROTOS)

proto-check: $(STAMP)
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTOS) && \
	if diff -r -x '__pycache__' -x '__init__.py' $$tmp/twin $(PROTO_OUT)/twin; then echo "protos up to date"; \
	else echo "generated code drifted from protos/: run 'make proto'"; rm -rf $$tmp; exit 1; fi; rm -rf $$tmp

bench: $(STAMP)
	$(PY) -m bench

# Longer runs of what `make test` runs briefly: coverage of every boundary parser, and faults while
# the simulator produces (JSON reports in bench/results/).
fuzz: $(STAMP)
	$(PY) -m tests.fuzz --examples 5000 --report bench/results/fuzz.json

chaos: $(STAMP)
	$(PY) -m bench chaos

validate-collectives: $(STAMP)
	$(PY) -m twin.fabric.validate $(CSV)

validate-holdout: $(STAMP)
	$(PY) -m twin.fabric.validate services/fabric/validation/collectives_holdout.csv

validate-moe: $(STAMP)
	$(PY) -m twin.fabric.validate_moe $(ARGS)

validate-scale: $(STAMP)
	$(PY) -m twin.fabric.validate_scale $(ARGS)

validate-power: $(STAMP)
	$(PY) -m twin.power.validate $(CSV)

validate-training: $(STAMP)
	$(PY) -m twin.jobs.validate $(CSV)

validate-cooling: $(STAMP)
	$(PY) -m twin.cooling.validate $(ARGS)

up:
	docker compose up -d --build

down:
	docker compose down -v

clean:
	rm -rf $(VENV) bench/results/*.json
