# The CRI validation suite (critest, sigs.k8s.io/cri-tools) against a private
# containerd, for the stockade and runc handlers, with a parity check:
#
#   make critest                      every runtime spec, both handlers
#   make critest CRITEST_FOCUS=Streaming   only specs matching a regexp
#   make critest CRITEST_PARALLEL=1   one ginkgo process (default 2)
#
# Everything the specs pull is built here from Debian's busybox packages and
# small static C programs (hack/critest/images/) and served by a registry on
# 127.0.0.1; see hack/critest/main.go for the run itself. A spec that passes
# under runc and fails under stockade fails the target unless
# hack/critest/by-design.txt gives the reason; hack/critest/skip.txt lists
# what is not run here, and why. Reports: bin/cri/report/.

CRITOOLS_VERSION := v1.37.0
# critest re-executes itself through the ginkgo CLI for parallel runs; it
# must be the ginkgo version cri-tools' go.mod requires.
GINKGO_VERSION   := v2.32.1
CRITOOLS_LDFLAGS := -X sigs.k8s.io/cri-tools/pkg/version.Version=$(CRITOOLS_VERSION)

# docker-registry serves the test images, skopeo loads them into it, and the
# CNI portmap plugin (hostPort specs) programs iptables.
APT_PACKAGES += docker-registry skopeo iptables

CRITEST_DIR      := $(BIN)/cri
CRITEST_IMG_DIR  := $(CRITEST_DIR)/images
CRITEST_PARALLEL ?= 2
CRITEST_FOCUS    ?=

.PHONY: critest critest-tools critest-images

critest: deps build images critest-tools critest-images $(CRITEST_DIR)/run
	$(CRITEST_DIR)/run -bin $(BIN) -images $(CRITEST_IMG_DIR) -out $(CRITEST_DIR)/report \
		-skip hack/critest/skip.txt -by-design hack/critest/by-design.txt \
		-parallel $(CRITEST_PARALLEL) $(if $(CRITEST_FOCUS),-focus '$(CRITEST_FOCUS)')

# Version checks instead of stamps, as for containerd: crictl and critest
# print the version they were linked with.
critest-tools: apt-deps
	@if ! $(BIN)/crictl --version 2>/dev/null | grep -qF '$(CRITOOLS_VERSION)'; then \
		echo "installing crictl $(CRITOOLS_VERSION) into bin/"; \
		GOFLAGS= GOBIN=$(BIN) $(GO) install -ldflags '$(CRITOOLS_LDFLAGS)' \
			sigs.k8s.io/cri-tools/cmd/crictl@$(CRITOOLS_VERSION); \
	fi
	@if ! $(BIN)/critest -version 2>/dev/null | grep -qF 'critest version: $(CRITOOLS_VERSION)'; then \
		echo "building critest $(CRITOOLS_VERSION) into bin/"; \
		dir=$$(GOFLAGS= $(GO) mod download -json sigs.k8s.io/cri-tools@$(CRITOOLS_VERSION) | \
			sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
		test -d "$$dir" || { echo "cri-tools $(CRITOOLS_VERSION): no module directory"; exit 1; }; \
		(cd "$$dir" && GOFLAGS= $(GO) test -c -ldflags '$(CRITOOLS_LDFLAGS)' -o $(BIN)/critest ./cmd/critest); \
	fi
	@if ! $(BIN)/ginkgo version 2>/dev/null | grep -qF '$(GINKGO_VERSION:v%=%)'; then \
		echo "installing ginkgo $(GINKGO_VERSION) into bin/"; \
		GOFLAGS= GOBIN=$(BIN) $(GO) install github.com/onsi/ginkgo/v2/ginkgo@$(GINKGO_VERSION); \
	fi

$(CRITEST_DIR)/run: $(wildcard hack/critest/*.go) $(wildcard integration/harness/*.go) go.mod go.sum
	$(GO) build -tags $(TAGS) -o $@ ./hack/critest

## images critest pulls -------------------------------------------------------

$(CRITEST_DIR)/httpserve: hack/critest/images/httpserve.c | apt-deps
	@mkdir -p $(@D)
	gcc -static -O2 -Wall -Wextra -o $@ $<

$(CRITEST_DIR)/applets: hack/critest/images/applets.c | apt-deps
	@mkdir -p $(@D)
	gcc -static -O2 -Wall -Wextra -o $@ $<

$(CRITEST_DIR)/nnp: hack/critest/images/nnp.c | apt-deps
	@mkdir -p $(@D)
	gcc -static -O2 -Wall -Wextra -o $@ $<

E2E := registry.k8s.io/e2e-test-images
CRIT := gcr.io/k8s-staging-cri-tools
CRITEST_IMAGES := busybox nginx httpd nonewprivs hostnet-nginx predefined-group test-image-tag
critest-images: $(CRITEST_IMAGES:%=$(CRITEST_IMG_DIR)/%.tar)

# A recipe change (a file added to an image) rebuilds the images.
$(CRITEST_IMAGES:%=$(CRITEST_IMG_DIR)/%.tar): mk/critest.mk

# The default test image: Debian's dynamically linked busybox (with its
# libraries) plus the two applets the specs run that it lacks (ipcs,
# pgrep). Not busybox-static: its sh runs applets in-process
# (FEATURE_SH_STANDALONE) and never executes /bin/ls, which the MaskedPaths
# spec masks and expects `sh -c ls` to fail on. Debian's busybox package
# conflicts with busybox-static, so it is unpacked here, not installed.
# /bin/ls is a copy, not a symlink: a mask on a symlink lands on its target,
# busybox itself (upstream's image uses hardlinks).
BUSYBOX_DEB_DIR := $(CRITEST_DIR)/busybox-deb
$(BUSYBOX_DEB_DIR)/bin/busybox: | apt-deps
	rm -rf $(BUSYBOX_DEB_DIR) && mkdir -p $(BUSYBOX_DEB_DIR)/deb
	cd $(BUSYBOX_DEB_DIR)/deb && { apt-get download -qq busybox 2>/dev/null || \
		{ apt-get update -qq && apt-get download -qq busybox; }; }
	dpkg-deb -x $(BUSYBOX_DEB_DIR)/deb/busybox_*.deb $(BUSYBOX_DEB_DIR)
	$@ true

# Each shared library at the path ldd resolves it to, and the program
# interpreter the binary names.
$(CRITEST_IMG_DIR)/busybox.tar: $(BIN)/hack/mkimage $(CRITEST_DIR)/applets $(BUSYBOX_DEB_DIR)/bin/busybox
	bb=$(BUSYBOX_DEB_DIR)/bin/busybox; libs=""; \
	for l in $$(ldd $$bb | awk '$$2 == "=>" && $$3 ~ /^\// {print $$3}'); do \
		libs="$$libs -add $$(readlink -f $$l):$$l:0755"; \
	done; \
	interp=$$(readelf -l $$bb | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p'); \
	test -n "$$interp"; \
	$(BIN)/hack/mkimage -o $@ -ref $(E2E)/busybox:1.29-2 -busybox $$bb -base $$libs \
		-add $$(readlink -f $$interp):$$interp:0755 \
		-add $(CRITEST_DIR)/applets:/bin/ipcs:0755 -add $(CRITEST_DIR)/applets:/bin/pgrep:0755 \
		-add $$bb:/bin/ls:0755 -cmd '["sh"]'

# nginx: port 80, /var/run/nginx.pid, "nginx: master process" as PID 1's
# cmdline, and a shell (the specs exec sh, cat and sleep in it).
$(CRITEST_IMG_DIR)/nginx.tar: $(BIN)/hack/mkimage $(CRITEST_DIR)/httpserve | apt-deps
	$(BIN)/hack/mkimage -o $@ -ref $(E2E)/nginx:1.14-2 -busybox $(BUSYBOX) -base \
		-add $(CRITEST_DIR)/httpserve:/usr/sbin/nginx:0755 \
		-entrypoint '["/usr/sbin/nginx","-m","-p","80","-P","/var/run/nginx.pid"]'

# httpd: port 80 and a log line naming it (the multi-container log check).
$(CRITEST_IMG_DIR)/httpd.tar: $(BIN)/hack/mkimage $(CRITEST_DIR)/httpserve | apt-deps
	$(BIN)/hack/mkimage -o $@ -ref $(E2E)/httpd:2.4.39-4 -busybox $(BUSYBOX) -base \
		-add $(CRITEST_DIR)/httpserve:/usr/local/apache2/bin/httpd:0755 \
		-entrypoint '["/usr/local/apache2/bin/httpd","-p","80"]'

# hostnet-nginx: the host-network port-forward spec expects port 12003.
$(CRITEST_IMG_DIR)/hostnet-nginx.tar: $(BIN)/hack/mkimage $(CRITEST_DIR)/httpserve | apt-deps
	$(BIN)/hack/mkimage -o $@ -ref $(CRIT)/hostnet-nginx-$(shell $(GO) env GOARCH):latest \
		-busybox $(BUSYBOX) -base -add $(CRITEST_DIR)/httpserve:/usr/sbin/nginx:0755 \
		-entrypoint '["/usr/sbin/nginx","-m","-p","12003"]'

# nonewprivs: a set-user-ID root program printing its effective uid.
$(CRITEST_IMG_DIR)/nonewprivs.tar: $(BIN)/hack/mkimage $(CRITEST_DIR)/nnp
	$(BIN)/hack/mkimage -o $@ -ref $(E2E)/nonewprivs:1.3 -base \
		-add $(CRITEST_DIR)/nnp:/usr/local/bin/nnp:04755 -entrypoint '["/usr/local/bin/nnp"]'

# test-image-predefined-group: uid 1000 in group 50000 through /etc/group.
$(CRITEST_IMG_DIR)/predefined-group.tar: $(BIN)/hack/mkimage hack/critest/images/predefined-group.passwd \
		hack/critest/images/predefined-group.group | apt-deps
	$(BIN)/hack/mkimage -o $@ -ref $(CRIT)/test-image-predefined-group:latest -busybox $(BUSYBOX) -base \
		-add hack/critest/images/predefined-group.passwd:/etc/passwd:0644 \
		-add hack/critest/images/predefined-group.group:/etc/group:0644 -cmd '["sh"]'

# test-image-tag:test: what the Image Volume specs mount into a container
# (busybox, so /bin/sh exists in the mounted tree).
$(CRITEST_IMG_DIR)/test-image-tag.tar: $(BIN)/hack/mkimage | apt-deps
	$(BIN)/hack/mkimage -o $@ -ref $(CRIT)/test-image-tag:test -busybox $(BUSYBOX) -base -cmd '["sh"]'
