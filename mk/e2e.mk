# The Kubernetes end-to-end tier: a private single-node cluster (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet) against
# the harness's private containerd, driven with kubectl by the tests in
# integration/e2e under the stockade and runc RuntimeClasses.
#
#   make e2e                      build what is missing, run every test
#   make e2e E2E_RUN=TestExec     only tests matching a regexp
#
# The Kubernetes binaries are built from the Go module proxy (hack/e2e/k8s
# pins them) into a cache outside the work tree, shared by every checkout:
# about 5-9 minutes on 2 cores the first time, instant after.

E2E_K8S_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/stockade/k8s-v1.35.4
E2E_RUN       ?=
E2E_PARALLEL  ?= 4

# util-linux's `script` gives kubectl exec -it a terminal.
APT_PACKAGES += util-linux

.PHONY: e2e e2e-k8s e2e-images

e2e-k8s:
	hack/e2e/build-k8s.sh $(E2E_K8S_CACHE) >/dev/null

# STOCKADE_E2E_REQUIRE makes a missing prerequisite a failure, not a skip.
e2e: deps build images e2e-images e2e-k8s
	STOCKADE_K8S_BIN=$(E2E_K8S_CACHE) STOCKADE_E2E_REQUIRE=1 \
		$(GO) test -tags $(TAGS) -count=1 -timeout 30m -v -parallel $(E2E_PARALLEL) \
		$(if $(E2E_RUN),-run '$(E2E_RUN)') ./integration/e2e/

## the installer image -----------------------------------------------------------

# TestInstaller installs stockade with contrib's DaemonSet, so it needs the
# image contrib/kubernetes/installer/Dockerfile describes. With no registry
# and no base image here, it is assembled from this host's files instead:
# the payload the Dockerfile copies (the shim and the CLI from bin/, which
# run on this very host, so its libseccomp is there), install.sh as the
# entrypoint, and the programs install.sh runs, each with the shared
# libraries ldd resolves and the program interpreter (as busybox.tar in
# mk/critest.mk). The test imports the tarball into the node's containerd.
# The DaemonSet's agent container runs bin/stockade inside the image, so its
# shared libraries (libseccomp) go in too; the Dockerfile's are static.
E2E_INSTALLER_IMAGE := $(BIN)/images/stockade-installer.tar
E2E_INSTALLER_TOOLS := env bash nsenter cmp awk curl grep cat cp mv rm chmod mkdir \
	dirname basename seq sleep

e2e-images: $(E2E_INSTALLER_IMAGE)

$(E2E_INSTALLER_IMAGE): $(BIN)/hack/mkimage $(BIN)/containerd-shim-stockade-v1 $(BIN)/stockade \
		contrib/kubernetes/installer/install.sh contrib/config.toml \
		contrib/containerd/stockade.toml mk/e2e.mk | apt-deps
	@mkdir -p $(@D)
	set -e; adds=""; progs=""; \
	for t in $(E2E_INSTALLER_TOOLS); do \
		p=$$(command -v $$t); test -n "$$p"; \
		progs="$$progs $$p"; adds="$$adds -add $$(readlink -f $$p):/usr/bin/$$t:0755"; \
	done; \
	for l in $$(for p in $$progs $(BIN)/stockade; do ldd $$p; done | awk '$$2 == "=>" && $$3 ~ /^\// {print $$3}' | sort -u); do \
		adds="$$adds -add $$(readlink -f $$l):$$l:0755"; \
	done; \
	interp=$$(readelf -l $$(command -v bash) | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p'); \
	test -n "$$interp"; \
	$(BIN)/hack/mkimage -o $@ -ref docker.io/stockade-test/stockade-installer:e2e -base $$adds \
		-add $$(readlink -f $$interp):$$interp:0755 \
		-add $(BIN)/containerd-shim-stockade-v1:/opt/stockade/bin/containerd-shim-stockade-v1:0755 \
		-add $(BIN)/stockade:/opt/stockade/bin/stockade:0755 \
		-add contrib/config.toml:/opt/stockade/config.toml:0644 \
		-add contrib/containerd/stockade.toml:/opt/stockade/containerd/stockade.toml:0644 \
		-add contrib/kubernetes/installer/install.sh:/usr/local/bin/stockade-install:0755 \
		-entrypoint '["/usr/local/bin/stockade-install"]' -cmd '["run-install"]'
