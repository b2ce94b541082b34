# stockade — build, test and benchmark entry points.
#
#   make            build the shim and the CLI into bin/
#   make deps       Debian packages, pinned containerd and runc (instant when present)
#   make images     local OCI image tarballs in bin/images/ (no registry)
#   make test       every tier: verify, unit, fuzz smoke, integration (private containerd),
#                   critest (CRI validation suite, both handlers), e2e (a real Kubernetes)
#   make verify     gofmt, go vet, staticcheck (pinned, from the Go module proxy)
#   make unit       unit tests only (root-only cases skip without root)
#   make integration  root integration tests only
#   make bench      stockade vs containerd-shim-runc-v2 + runc (bench/results/)
#   make bench-smoke  a < 60 s benchmark run, as CI does it

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO      ?= go
BIN     := $(CURDIR)/bin
TAGS    := seccomp
# libseccomp is linked through cgo: the seccomp tag without cgo silently
# builds a binary without seccomp support.
export CGO_ENABLED := 1

# What -v, -info and `stockade version` report.
VERSION  ?= 0.1.0-dev
REVISION := $(shell git rev-parse HEAD 2>/dev/null)$(shell test -n "$$(git status --porcelain --untracked-files=no 2>/dev/null)" && echo -dirty)
LDFLAGS  := -X github.com/stockade-dev/stockade/version.Version=$(VERSION) \
            -X github.com/stockade-dev/stockade/version.Revision=$(REVISION)

CONTAINERD_VERSION := v2.3.7
RUNC_VERSION       := v1.5.2
APT_PACKAGES       := libseccomp-dev pkg-config busybox-static apparmor \
                      containernetworking-plugins iproute2 gcc

IMAGE_PREFIX := docker.io/stockade-test
IMAGES       := $(BIN)/images/busybox.tar $(BIN)/images/pause.tar $(BIN)/images/sysbench.tar
BUSYBOX      := /bin/busybox

.PHONY: build deps apt-deps containerd runc images test unit unit-test integration integration-test fuzz fuzz-smoke \
        vet verify staticcheck demo bench bench-smoke clean distclean

## build ---------------------------------------------------------------------

# Always handed to go build: the Go build cache decides what is stale.
build:
	$(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/containerd-shim-stockade-v1 ./cmd/containerd-shim-stockade-v1
	$(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/stockade ./cmd/stockade

## deps ----------------------------------------------------------------------

deps: apt-deps containerd runc

# $(call apt_install,PACKAGES) installs only the missing ones; `apt-get
# update` runs once, and only when something is missing.
define apt_install
	@missing=""; \
	for p in $(1); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "apt-get install:$$missing"; \
		apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

apt-deps:
	$(call apt_install,$(APT_PACKAGES))

# Version checks instead of stamps: the binaries answer in milliseconds, and
# a deleted or replaced binary is noticed.
containerd:
	@if ! $(BIN)/containerd --version 2>/dev/null | grep -qF ' $(CONTAINERD_VERSION:v%=%)' || \
	    ! $(BIN)/ctr --version 2>/dev/null | grep -qF ' $(CONTAINERD_VERSION:v%=%)' || \
	    ! $(BIN)/containerd-shim-runc-v2 -v 2>/dev/null | grep -qF '$(CONTAINERD_VERSION:v%=%)'; then \
		echo "installing containerd $(CONTAINERD_VERSION) into bin/"; \
		GOFLAGS= GOBIN=$(BIN) $(GO) install \
			github.com/containerd/containerd/v2/cmd/containerd@$(CONTAINERD_VERSION) \
			github.com/containerd/containerd/v2/cmd/ctr@$(CONTAINERD_VERSION) \
			github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$(CONTAINERD_VERSION); \
	fi

runc: apt-deps
	@if ! $(BIN)/runc --version 2>/dev/null | grep -qF 'runc version $(RUNC_VERSION:v%=%)'; then \
		echo "installing runc $(RUNC_VERSION) into bin/"; \
		GOFLAGS= GOBIN=$(BIN) $(GO) install -tags seccomp github.com/opencontainers/runc@$(RUNC_VERSION); \
	fi

## images --------------------------------------------------------------------

images: $(IMAGES)

$(BIN)/hack/mkimage: $(wildcard hack/mkimage/*.go) go.mod go.sum
	$(GO) build -o $@ ./hack/mkimage

# The C tools that go into images, each hack/NAME/NAME.c; static, so the
# images need no libc.
C_TOOLS := pause sysbench probe

define c_tool
$(BIN)/hack/$(1): hack/$(1)/$(1).c | apt-deps
	@mkdir -p $$(@D)
	gcc -static -O2 -Wall -Wextra -o $$@ $$<
endef
$(foreach t,$(C_TOOLS),$(eval $(call c_tool,$(t))))

# probe (raw syscalls busybox has no applet for) rides along in busybox so
# integration tests can check what a profile allows from a shell; a set-user-ID
# copy lets them check that remapped snapshots keep the bit.
$(BIN)/images/busybox.tar: $(BIN)/hack/mkimage $(BIN)/hack/probe Makefile | apt-deps
	$(BIN)/hack/mkimage -o $@ -ref $(IMAGE_PREFIX)/busybox:latest \
		-busybox $(BUSYBOX) -base -add $(BIN)/hack/probe:/bin/probe:0755 \
		-add $(BIN)/hack/probe:/bin/probe-setuid:04755 -cmd '["sh"]'

$(BIN)/images/pause.tar: $(BIN)/hack/mkimage $(BIN)/hack/pause
	$(BIN)/hack/mkimage -o $@ -ref $(IMAGE_PREFIX)/pause:latest \
		-add $(BIN)/hack/pause:/pause:0755 -entrypoint '["/pause"]'

$(BIN)/images/sysbench.tar: $(BIN)/hack/mkimage $(BIN)/hack/sysbench
	$(BIN)/hack/mkimage -o $@ -ref $(IMAGE_PREFIX)/sysbench:latest -base \
		-add $(BIN)/hack/sysbench:/bin/sysbench:0755 -entrypoint '["/bin/sysbench"]' -cmd '["getpid","1000000"]'

## test ----------------------------------------------------------------------

# Every tier runs even when an earlier one fails, so one CI run reports all.
test: deps build images
	@rc=0; \
	$(MAKE) --no-print-directory verify || rc=1; \
	$(MAKE) --no-print-directory unit-test STOCKADE_REQUIRE_ROOT=1 || rc=1; \
	$(MAKE) --no-print-directory fuzz-smoke || rc=1; \
	$(MAKE) --no-print-directory integration-test || rc=1; \
	$(MAKE) --no-print-directory critest || rc=1; \
	$(MAKE) --no-print-directory e2e || rc=1; \
	exit $$rc

unit: unit-test
integration: integration-test

# Integration packages are left out here: they run below, one at a time.
# Root-only unit tests skip without root; make test runs as root and sets
# STOCKADE_REQUIRE_ROOT=1, which turns such a skip into a failure.
unit-test:
	STOCKADE_REQUIRE_ROOT=$(STOCKADE_REQUIRE_ROOT) $(GO) test -tags $(TAGS) $$($(GO) list -e -tags $(TAGS) ./... | grep -v '/integration/')

# Each integration package starts its own containerd; -p 1 keeps two from
# competing for the 2 cores and for cgroups. integration/e2e runs in make e2e,
# which starts the cluster it needs.
integration-test:
	@rc=0; \
	$(GO) test -tags $(TAGS) -p 1 -count=1 -timeout 40m $$($(GO) list ./integration/... | grep -v /integration/e2e) || rc=1; \
	echo "--- the Task API and CRI contract suites again, with containerd-shim-runc-v2 + runc"; \
	STOCKADE_TEST_RUNTIME=runc STOCKADE_STRESS_COUNT=200 \
		$(GO) test -tags $(TAGS) -p 1 -count=1 -timeout 20m ./integration/task/ ./integration/cri/ || rc=1; \
	exit $$rc

# Every fuzz target for a fixed number of inputs (their seeds already run
# as unit tests), sized to a few seconds each: FuzzGenerate compiles every
# profile with libseccomp and manages about 50 inputs a second. The budget
# is a count, not a duration: Go 1.26's fuzz coordinator can report
# "context deadline exceeded" as a failure when a duration runs out while a
# worker is mid-input (golang/go#75804, fixed in Go 1.27), and CI hit that.
# Longer runs: make fuzz FUZZTIME=1000000x (one budget for every target).
FUZZ_TARGETS := ./config:FuzzParse:10000 ./hooks:FuzzParseAnnotations:20000 \
	./hooks:FuzzSpecPipeline:10000 ./profiles/seccomp:FuzzGenerate:300 \
	./profiles/apparmor:FuzzRender:10000
fuzz-smoke fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; budget=$(or $(FUZZTIME),$${rest#*:}x); \
		echo "fuzz $$name ($$pkg, $$budget)"; \
		$(GO) test -tags $(TAGS) -run '^$$' -fuzz "^$$name\$$" -fuzztime $$budget $$pkg || exit 1; \
	done

vet:
	$(GO) vet -tags $(TAGS) ./...

STATICCHECK_VERSION := v0.8.2

staticcheck:
	@if ! $(BIN)/staticcheck -version 2>/dev/null | grep -qF '($(STATICCHECK_VERSION:v%=%))'; then \
		echo "installing staticcheck $(STATICCHECK_VERSION) into bin/"; \
		GOFLAGS= GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	fi

# gofmt, go vet and staticcheck over every package, tests included.
verify: staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet -tags $(TAGS) ./...
	$(BIN)/staticcheck -tags $(TAGS) ./...

## demo and bench ------------------------------------------------------------

demo: deps build images
	$(GO) run -tags $(TAGS) ./hack/demo

bench: deps build images
	$(GO) build -tags $(TAGS) -o $(BIN)/bench ./bench/cmd/bench
	$(BIN)/bench -out bench/results

bench-smoke: deps build images
	$(GO) build -tags $(TAGS) -o $(BIN)/bench ./bench/cmd/bench
	$(BIN)/bench -smoke -out $(BIN)/bench-smoke

## tiers kept in their own files --------------------------------------------

# mk/*.mk hold the larger tiers (the CRI validation suite, the Kubernetes
# end-to-end tier), each with its own install and cache steps.
include $(wildcard mk/*.mk)

## clean ---------------------------------------------------------------------

# Keeps the pinned containerd and runc, which take minutes to reinstall.
clean:
	rm -rf $(BIN)/containerd-shim-stockade-v1 $(BIN)/stockade $(BIN)/bench \
		$(BIN)/images $(BIN)/hack $(BIN)/bench-smoke

distclean:
	rm -rf $(BIN)
