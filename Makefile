# Qdrant key rotator. `make help` lists the targets.
SHELL   := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO      ?= go
# The vault binary: $VAULT_BIN, a vault >= 1.14 on PATH, or Vault v1.14.0 built once from the Go module proxy.
ENSURE_VAULT := testbed/vault/ensure-vault.sh
# The nginx binary for the network kit's tests: $NGINX_BIN, nginx on PATH, or Debian's nginx installed with apt-get.
ENSURE_NGINX := testbed/nginx/ensure-nginx.sh
# promtool for the alert rules' tests: $PROMTOOL_BIN, promtool on PATH, or Debian's prometheus installed with apt-get.
ENSURE_PROMTOOL := testbed/prometheus/ensure-promtool.sh
# The Kubernetes test cluster: Debian's containerd, runc and CNI plugins (installed with apt-get when missing), and
# Kubernetes v1.34.4 built once from the Go module proxy into ~/.cache/qdrant-rotator ($K8S_BIN_DIR overrides).
ENSURE_K8S_PACKAGES := testbed/k8s/ensure-packages.sh
ENSURE_K8S := testbed/k8s/ensure-k8s.sh

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/rotator
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/rotator ./cmd/rotator

.PHONY: vault
vault: ## yield a vault binary (builds Vault v1.14.0 once into ~/.cache/qdrant-rotator) and print its path
	@$(ENSURE_VAULT)

.PHONY: k8s
k8s: ## build Kubernetes v1.34.4 once (about 15 min cold), start a single-node test cluster and print its kubeconfig; Ctrl-C stops it
	@$(ENSURE_K8S_PACKAGES) && K8S_BIN_DIR=$$($(ENSURE_K8S)) && export K8S_BIN_DIR && $(GO) run ./testbed/cmd/testbed k8s

.PHONY: standin
standin: ## build bin/qdrant-standin, the static Qdrant stand-in used by tests
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/qdrant-standin ./testbed/cmd/qdrant-standin

.PHONY: standin-image
standin-image: ## build the stand-in image FROM scratch (no registry) and print its tag
	@$(GO) run ./testbed/cmd/testbed image

.PHONY: lint
lint: ## gofmt and go vet
	@unformatted=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...

.PHONY: test
test: lint ## run every test against the real Vault dev server and Docker Engine (fails if either is unusable)
	@docker version >/dev/null || { echo "make test: the Docker Engine is required and does not answer"; exit 1; }
	VAULT_BIN=$$($(ENSURE_VAULT)) && export VAULT_BIN && \
	  NGINX_BIN=$$($(ENSURE_NGINX)) && export NGINX_BIN && \
	  PROMTOOL_BIN=$$($(ENSURE_PROMTOOL)) && export PROMTOOL_BIN && \
	  $(ENSURE_K8S_PACKAGES) && K8S_BIN_DIR=$$($(ENSURE_K8S)) && export K8S_BIN_DIR && \
	  $(GO) test -count=1 -timeout 40m ./...
	@# The time-dependent tests again with their clock years ahead: none may depend on today's date.
	ROTATOR_TEST_EPOCH=2031-07-01T03:00:00Z $(GO) test -count=1 ./rotation/

# The ratio benchmarks run 3 times after a first run (their figures are means); the others once, each being many
# rotations already (the fleet's 50 deployments per max_parallel, the endurance's 200 rotations). About 50 minutes.
BENCH_MEANS := RotationOverhead|ClusterRotation|KubernetesRotation
BENCH_ONCE  := Remint10000Keys|IdleDaemon100|VaultRequests|ClientLoad|Fleet|Endurance

.PHONY: bench
bench: ## benchmarks, each figure beside its goal and a baseline measured in the same run (about 50 minutes)
	@docker version >/dev/null || { echo "make bench: the Docker Engine is required and does not answer"; exit 1; }
	VAULT_BIN=$$($(ENSURE_VAULT)) && export VAULT_BIN && \
	  $(ENSURE_K8S_PACKAGES) && K8S_BIN_DIR=$$($(ENSURE_K8S)) && export K8S_BIN_DIR && \
	  $(GO) test -run '^$$' -bench '^Benchmark($(BENCH_MEANS))$$' -benchtime 3x -timeout 60m ./cmd/rotator/ && \
	  $(GO) test -run '^$$' -bench '^Benchmark($(BENCH_ONCE))$$' -benchtime 1x -timeout 120m ./cmd/rotator/

# Fuzz targets as package:FuzzName, run one after another by `make fuzz` for FUZZTIME each.
FUZZTIME     ?= 3m
FUZZ_TARGETS ?= ./config:FuzzParse ./daemon:FuzzAPI ./qdrantctl:FuzzWriteConfigKeys ./testbed/standin:FuzzJWTRoundTrip
# Schedules of the randomized model check of the rotation protocol that `make fuzz` runs (make test runs 10,000).
MODELCHECK_N ?= 300000

.PHONY: fuzz
fuzz: ## run each fuzz target for FUZZTIME (default 3m) and the model check for MODELCHECK_N schedules; print executions
	@set -o pipefail; out=$$(mktemp -d); failed=0; \
	for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "== $$name ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1 | tee $$out/$$name.log || failed=1; \
	  last=$$(grep '^fuzz: elapsed: ' $$out/$$name.log | tail -1); \
	  execs=$$(sed -n 's/.*, execs: \([0-9]*\).*/\1/p' <<<"$$last"); elapsed=$$(sed -n 's/^fuzz: elapsed: \([^,]*\),.*/\1/p' <<<"$$last"); \
	  echo "$$name: $${execs:-0} execs in $${elapsed:-0s}" >>$$out/summary; \
	done; \
	echo "== TestModelCheck (./rotation) for $(MODELCHECK_N) schedules"; \
	ROTATOR_MODELCHECK_N=$(MODELCHECK_N) $(GO) test -run '^TestModelCheck$$' -count=1 -timeout 0 -v ./rotation/ 2>&1 | tee $$out/model.log | grep -v '^=== ' || failed=1; \
	echo "TestModelCheck: $$(grep -o '[0-9]* schedules[^;]*' $$out/model.log | tail -1)" >>$$out/summary; \
	echo "== executions per target"; cat $$out/summary; rm -rf $$out; exit $$failed

.PHONY: demo
demo: build ## the main job, locally: Vault dev server + 3 stand-in nodes, a full key rotation (KEEP=1 stays up)
	VAULT_BIN=$$($(ENSURE_VAULT)) && export VAULT_BIN && \
	  $(GO) run ./testbed/cmd/testbed demo -rotator bin/rotator $(if $(KEEP),-keep)

.PHONY: testbed-down
testbed-down: ## remove every container, network and volume the test bed made (after an interrupted run)
	$(GO) run ./testbed/cmd/testbed down

.PHONY: clean
clean: ## remove build output
	rm -rf bin
