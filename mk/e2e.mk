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

.PHONY: e2e e2e-k8s

e2e-k8s:
	hack/e2e/build-k8s.sh $(E2E_K8S_CACHE) >/dev/null

# STOCKADE_E2E_REQUIRE makes a missing prerequisite a failure, not a skip.
e2e: deps build images e2e-k8s
	STOCKADE_K8S_BIN=$(E2E_K8S_CACHE) STOCKADE_E2E_REQUIRE=1 \
		$(GO) test -tags $(TAGS) -count=1 -timeout 30m -v -parallel $(E2E_PARALLEL) \
		$(if $(E2E_RUN),-run '$(E2E_RUN)') ./integration/e2e/
