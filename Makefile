# kvd build, run and test entry points. Everything a test needs is built or
# installed from here, so a clean clone with only Go passes `make test`.

GO        ?= go
BIN       := bin
# The reference etcd, etcdctl and etcdutl (v3.7.3) are built once into a cache folder
# outside the tree, keyed by the reference module's go.sum, and reused.
TOOLS_DIR ?= $(HOME)/.cache/kvd-tools/$(shell sha256sum tools/etcdref/go.sum 2>/dev/null | cut -c1-12)
ETCD      := $(TOOLS_DIR)/etcd
ETCDCTL   := $(TOOLS_DIR)/etcdctl
ETCDUTL   := $(TOOLS_DIR)/etcdutl
DATA_DIR  ?= default.kvd
# etcd v3.5, the last release whose members bootstrap from a discovery URL
# (--discovery), for the tests of kvd's discovery service; built from its
# own module (tools/etcd35) into a cache folder keyed by that go.sum.
ETCD35_DIR ?= $(HOME)/.cache/kvd-tools/etcd35-$(shell sha256sum tools/etcd35/go.sum 2>/dev/null | cut -c1-12)
ETCD35     := $(ETCD35_DIR)/etcd

export KVD_ETCD_BIN    := $(ETCD)
export KVD_ETCDCTL_BIN := $(ETCDCTL)
export KVD_ETCDUTL_BIN := $(ETCDUTL)
export KVD_ETCD35_BIN  := $(ETCD35)

# Packages with concurrency run under the race detector in `make test`.
RACE_PKGS := ./pkg/server/... ./pkg/client/...

.PHONY: build run cluster test unit e2e interop robustness bench lint tools clean

build:
	$(GO) build -o $(BIN)/ ./cmd/...

run: build
	$(BIN)/kvd --data-dir $(DATA_DIR)

# A local 3-member cluster on the Procfile ports (12379, 22379, 32379), left
# running in the background; `scripts/cluster.sh stop` ends it.
cluster:
	./scripts/cluster.sh start

tools: $(ETCD) $(ETCDCTL) $(ETCDUTL) $(ETCD35)

$(ETCD) $(ETCDCTL) $(ETCDUTL): tools/etcdref/go.mod tools/etcdref/go.sum
	mkdir -p $(TOOLS_DIR)
	cd tools/etcdref && $(GO) build -o $(TOOLS_DIR)/ ./etcd ./etcdctl ./etcdutl

$(ETCD35): tools/etcd35/go.mod tools/etcd35/go.sum
	mkdir -p $(ETCD35_DIR)
	cd tools/etcd35 && $(GO) build -o $(ETCD35_DIR)/ ./etcd

test: build tools lint unit e2e

unit:
	$(GO) test -race -count=1 -timeout 10m $(RACE_PKGS)
	$(GO) test -count=1 -timeout 10m ./cmd/... ./pkg/version/...

e2e: build tools
	$(GO) test -count=1 -timeout 10m ./tests/...

# The interop pairings (etcdctl against kvd, kvctl against etcd) run as part
# of the e2e suite; this target runs only them.
interop: build tools
	$(GO) test -count=1 -timeout 10m -run 'CLIBehaviour|Clientv3Conformance|ClientLibrary' ./tests/...

# The linearizability robustness scenarios (tests/robustness) also run in
# e2e with their short defaults; this target runs them alone, each for as
# long and with the seed asked for: make robustness DURATION=5m SEED=1.
# SEED=0 picks a seed from the clock; the test prints the one it used.
# RUN picks scenarios (RUN=TestRobustness/partition); FAULTS runs one
# scenario of chosen faults instead of the matrix (FAULTS=kill,freeze).
DURATION ?= 15s
SEED     ?= 0
RUN      ?= .
FAULTS   ?=
# Members save a raft snapshot every SNAPSHOT_COUNT entries, so that kills
# land around snapshot saves and WAL releases (0: kvd's default of 10000).
SNAPSHOT_COUNT ?= 200

robustness: build
	$(GO) test -v -count=1 -timeout 120m ./tests/robustness/ -run '$(RUN)' -args -duration=$(DURATION) -seed=$(SEED) -faults=$(FAULTS) -snapshot-count=$(SNAPSHOT_COUNT)

bench: build tools
	./scripts/bench.sh

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf $(BIN) $(DATA_DIR)
