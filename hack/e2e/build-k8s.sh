#!/usr/bin/env bash
# Builds the pinned Kubernetes control plane, kubelet, kubectl and etcd from
# the Go module proxy into a cache outside the work tree, so that a fresh
# clone (or another checkout) reuses them. Rebuilds only when a binary is
# missing or answers with another version than the one pinned in k8s/go.mod.
#
#   hack/e2e/build-k8s.sh [DIR]     prints DIR when it is complete
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=v1.35.4
ETCD_VERSION=v3.6.5
dir=${1:-${STOCKADE_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stockade/k8s-$K8S_VERSION}}

# The pins live in go.mod; this script's constants must agree with it, or the
# version check below would accept binaries of another version forever.
grep -q "k8s.io/kubernetes $K8S_VERSION" "$here/k8s/go.mod" ||
	{ echo "build-k8s: k8s/go.mod does not pin k8s.io/kubernetes $K8S_VERSION" >&2; exit 1; }
grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$here/k8s/go.mod" ||
	{ echo "build-k8s: k8s/go.mod does not pin etcd $ETCD_VERSION" >&2; exit 1; }

# Output is captured before matching: with pipefail, `grep -q` closing the
# pipe early would fail the check through the writer's SIGPIPE.
current() {
	local b out
	for b in kube-apiserver kube-controller-manager kube-scheduler kubelet; do
		out=$("$dir/$b" --version 2>/dev/null) || return 1
		grep -qx "Kubernetes $K8S_VERSION" <<<"$out" || return 1
	done
	out=$("$dir/kubectl" version --client 2>/dev/null) || return 1
	grep -qx "Client Version: $K8S_VERSION" <<<"$out" || return 1
	out=$("$dir/etcd" --version 2>/dev/null) || return 1
	grep -qx "etcd Version: ${ETCD_VERSION#v}" <<<"$out" || return 1
}

if current; then
	echo "$dir"
	exit 0
fi

mkdir -p "$dir"
cd "$here/k8s"
# Kubernetes stamps its version through ldflags (hack/lib/version.sh does the
# same); without them every binary reports v0.0.0-master and the kubelet's
# version skew checks against the apiserver get confused.
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=35"
ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=35"
# kube-apiserver and kubelet embed nothing that needs cgo; static binaries
# also make the build independent of the host's libc.
export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$(date +%s)
go build -trimpath -ldflags "$ldflags" -o "$dir/" \
	k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler \
	k8s.io/kubernetes/cmd/kubelet \
	k8s.io/kubernetes/cmd/kubectl
go build -trimpath -ldflags "-s -w" -o "$dir/etcd" go.etcd.io/etcd/server/v3
echo "build-k8s: built in $(( $(date +%s) - start ))s" >&2
current || { echo "build-k8s: binaries in $dir do not report $K8S_VERSION / etcd $ETCD_VERSION" >&2; exit 1; }
echo "$dir"
