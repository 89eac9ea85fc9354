# wasm-crates-registry — build, run and test a registry node.
#
#   make run    install what is missing, build, start a node (data in ./registry-data,
#               REST API on http://127.0.0.1:8080)
#   make test   install what is missing, build, run the whole test suite; it ends with
#               every skipped test and why, and fails when a test failed or a whole
#               capability (cargo-protocol, fuse, vectors) went untested, unless
#               WCR_ALLOW_SKIP=cap1,cap2 accepts the gap (docs/TESTING.md)
#   make corpus install what is missing, run the pipeline on Debian's crate corpus
#               (pipeline/corpus_test.go; checked by hand in docs/PIPELINE.md; several minutes)
#
# Debian packages are installed with apt-get only when missing (as root, or with sudo).

GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# The wasm-capable Rust toolchain, the sandbox, and real crates the tests run the pipeline on.
APT_RUNTIME := rustc cargo libstd-rust-dev-wasm32 lld wasi-libc bubblewrap util-linux
APT_TEST    := $(APT_RUNTIME) strace chromium nginx-light python3-cbor2 python3-nacl librust-itoa-dev librust-memchr-dev \
               librust-ryu-dev librust-semver-dev librust-serde-dev librust-cc-dev librust-getrandom-dev librust-lock-api-dev
# Widely used crates the pipeline runs on in `make corpus`, and the dev-dependencies of once_cell.
APT_CORPUS  := $(APT_TEST) librust-adler-dev librust-arrayvec-dev librust-base64-dev librust-bitflags-dev \
               librust-byteorder-dev librust-bytes-dev librust-crc32fast-dev librust-either-dev librust-fnv-dev \
               librust-half-dev librust-heck-dev librust-hex-dev librust-itertools-dev librust-lazy-static-dev \
               librust-miniz-oxide-dev librust-num-traits-dev librust-once-cell-dev librust-smallvec-dev \
               librust-static-assertions-dev librust-strsim-dev librust-unicode-segmentation-dev \
               librust-unicode-width-dev librust-crossbeam-utils-dev librust-regex-dev

GO_PACKAGES := ./...
RACE_PACKAGES := . ./store/... ./node/... ./federation/... ./cmd/wasm-crates-registry-cli/...
# The pipeline's tests that run cargo (fixtures, Debian crates, doc-tests,
# benches, verdicts): they run once, in the plain run of every package, and
# are skipped in the pipeline's race run, which keeps the supervisor, the
# sandbox, the wasm runner, the unit tests and one real pipeline run (the
# "pure" fixture, through TestProgressEvents and TestReportSignsAndDecodes).
# wcr-testsummary -every fails the run if a test ran in none of the commands.
PIPELINE_CARGO := TestFixture.*|TestDebian.*|TestBench(Ratios|None|Hostile|MissingDevDependency)Fixture|TestConfig(WasmFeature|MissingFeature|RefusedByCargo)Fixture|TestHostileCrates|TestLikeWithLikeLints|TestLikeWithLikeLintNeedsCap|TestDocTests|TestDocTestsDebian|TestDocTestTimeout|TestMemoryPeak|TestPipelineDirectoryModes|TestCrateCargoConfigNeverApplies|TestDirectorySourcesWinOverStoreReleases|TestTamperedStoreCrateUnpackedAgain|TestStoreCratesMaterialisedOnce|TestVerdict(SpoofingBuildScriptWasmOnly|SpoofingBuildScriptEverywhere|ToolchainAgeLibrary|ToolchainAgeTests|MissingDevDependency|DevDependencyFromStore|WasmOnlyTestFailure|RustVersion|ControlCrateOncePerProcess)|TestWasmTestsCannotLeaveTheirDirectory|TestWasmTestNeverEndsLeavesNoProcess
# The daemon's end-to-end tests that run it concurrently (clients, peers,
# kill -9), with the daemon and CLI themselves built with -race: a data race
# a daemon reports fails the test. The pipeline's end-to-end tests spend their
# time in cargo, not in the daemon, and are left out.
RACE_E2E := TestEndToEndWithRealBinaries|TestKillDashNineLosesNothingAcknowledged|TestTwoDaemonsFederate|TestRestartedNodeRedialsItsPeers|TestConcurrentWritesAreAuditedOnce|TestDeveloperKeysAcrossNodes|TestReindexVerifiesAndCLIReports|TestTrustFollowsALineOfNodes

.PHONY: all build run test test-short bench corpus deps-corpus deps-run deps-test go-deps apt fmt vet clean

all: build

build: go-deps
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

run: deps-run build
	./$(BIN)/wasm-crates-registry

test: deps-test build vet
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed on: $$unformatted"; exit 1; fi
	./$(BIN)/wcr-testsummary -go $(GO) -every "$(GO_PACKAGES)" \
	  -cmd "$(GO) test -json -count=1 -timeout 40m $(GO_PACKAGES)" \
	  -cmd "$(GO) test -json -count=1 -race -timeout 30m $(RACE_PACKAGES)" \
	  -cmd "$(GO) test -json -count=1 -race -timeout 20m -skip ^($(PIPELINE_CARGO))$$ ./pipeline/..." \
	  -cmd "$(GO) test -json -count=1 -race -timeout 20m -run ^($(RACE_E2E))$$ ./cmd/wasm-crates-registry/"

test-short: go-deps
	$(GO) test -short -count=1 $(GO_PACKAGES)

bench: go-deps
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

corpus: deps-corpus
	WCR_DEBIAN_CORPUS=1 $(GO) test -count=1 -timeout 45m -run '^TestDebianCorpus$$' -v ./pipeline/

vet: go-deps
	$(GO) vet ./...

deps-run: go-deps
	@$(MAKE) --no-print-directory apt PKGS="$(APT_RUNTIME)"

deps-test: go-deps
	@$(MAKE) --no-print-directory apt PKGS="$(APT_TEST)"

deps-corpus: go-deps
	@$(MAKE) --no-print-directory apt PKGS="$(APT_CORPUS)"

go-deps:
	@command -v $(GO) >/dev/null || { echo "Go is not installed: install Go 1.26 (https://go.dev/dl) and run make again"; exit 1; }
	$(GO) mod download

# apt installs the Debian packages in PKGS that are not installed yet.
apt:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; \
	  else echo "missing Debian packages:$$missing (run as root or install sudo)"; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
