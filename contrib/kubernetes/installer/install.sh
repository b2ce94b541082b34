#!/usr/bin/env bash
# install.sh - puts stockade on a Kubernetes node from the installer image,
# the way kata-deploy does: copy the shim, the CLI and the node config onto
# the host, register the runtime handler with containerd through a drop-in,
# restart containerd, label the node. Run by the DaemonSet in
# daemonset.yaml; every step is idempotent, so a restarted pod changes
# nothing and restarts nothing.
#
# usage: install.sh install|uninstall|run-install|run-uninstall
#   install        install (or update) and exit
#   uninstall      unlabel, remove the drop-in and the binaries, and exit
#   run-*          the same, then sleep until terminated (DaemonSet mode:
#                  a DaemonSet pod must keep running)
#
# Environment (defaults are for the DaemonSet; tests point them elsewhere):
#   HOST_ROOT          where the host's paths are mounted (/host)
#   PAYLOAD_DIR        the image's files (/opt/stockade)
#   BIN_DIR            host dir for the binaries (/usr/local/bin)
#   STOCKADE_DIR       host dir of the node config (/etc/stockade)
#   CONTAINERD_CONFIG  host path of containerd's config (/etc/containerd/config.toml)
#   DROPIN_DIR         host dir containerd imports (/etc/containerd/conf.d)
#   CONTAINERD_SERVICE systemd unit to restart (containerd)
#   NODE_NAME          node to label (from the downward API); empty: no label
#   NODE_LABEL         label key set to "true" (stockade.dev/enabled)
#   HOST_EXEC          prefix running a command on the host
#                      (nsenter --target 1 --mount --uts --ipc --net --pid --)
#   DRY_RUN=1          edit files, but only print host commands and API calls
#   PURGE=1            uninstall also removes the node config
set -euo pipefail

HOST_ROOT=${HOST_ROOT:-/host}
PAYLOAD_DIR=${PAYLOAD_DIR:-/opt/stockade}
BIN_DIR=${BIN_DIR:-/usr/local/bin}
STOCKADE_DIR=${STOCKADE_DIR:-/etc/stockade}
CONTAINERD_CONFIG=${CONTAINERD_CONFIG:-/etc/containerd/config.toml}
DROPIN_DIR=${DROPIN_DIR:-/etc/containerd/conf.d}
CONTAINERD_SERVICE=${CONTAINERD_SERVICE:-containerd}
NODE_NAME=${NODE_NAME:-}
NODE_LABEL=${NODE_LABEL:-stockade.dev/enabled}
HOST_EXEC=${HOST_EXEC:-nsenter --target 1 --mount --uts --ipc --net --pid --}
DRY_RUN=${DRY_RUN:-0}
PURGE=${PURGE:-0}

SHIM=containerd-shim-stockade-v1
DROPIN=$DROPIN_DIR/stockade.toml
MARKER="# added by the stockade installer: containerd reads drop-ins only through imports"
# Set by install_file and ensure_import when they changed a file. Globals,
# not output: a die inside $(...) would only end the subshell.
changed=0

log() { echo "stockade-installer: $*" >&2; }
die() { log "error: $*"; exit 1; }

# host maps a host path to where this container sees it.
host() { echo "${HOST_ROOT}$1"; }

# on_host runs a command in the host's namespaces (or prints it).
on_host() {
	if [[ $DRY_RUN == 1 ]]; then
		log "dry-run: on host: $*"
		return 0
	fi
	# shellcheck disable=SC2086 # HOST_EXEC is a command prefix
	$HOST_EXEC "$@"
}

# install_file copies src to dst (a path in this container) if it differs,
# through a rename: a running shim keeps its old binary, and nothing ever
# sees a half-written file. Sets changed=1 if it copied.
install_file() {
	local src=$1 dst=$2 mode=$3
	[[ -f $src ]] || die "payload file $src missing"
	if [[ -f $dst ]] && cmp -s "$src" "$dst"; then
		return 0
	fi
	mkdir -p "$(dirname "$dst")"
	cp "$src" "$dst.stockade-new"
	chmod "$mode" "$dst.stockade-new"
	mv -f "$dst.stockade-new" "$dst"
	log "installed $dst"
	changed=1
}

# top_level_imports prints the value of containerd's top-level imports key
# (possibly several lines), or nothing if the key is absent. Top-level keys
# come before the first table header; brackets inside strings do not count.
top_level_imports() {
	awk '
	function scan(s,   i, c) {
		for (i = 1; i <= length(s); i++) {
			c = substr(s, i, 1)
			if (q != "") { if (c == q) q = ""; continue }
			if (c == "\"" || c == "\047") { q = c; continue }
			if (c == "#") return
			if (c == "[") depth++
			if (c == "]" && --depth == 0) { done = 1; return }
		}
	}
	!inside && /^[ \t]*\[/ { exit }
	!inside && /^[ \t]*("imports"|\047imports\047|imports)[ \t]*=/ {
		inside = 1; sub(/^[^=]*=/, "")
	}
	inside { print; scan($0); if (done) exit }
	' "$1"
}

# imports_cover reports whether an imports value makes containerd load
# file (a host path). containerd globs each entry with filepath.Glob, where
# "*" stops at "/", and resolves relative entries against the config's dir.
imports_cover() {
	local value=$1 file=$2 entry
	while IFS= read -r entry; do
		entry=${entry:1:${#entry}-2}
		[[ $entry == /* ]] || entry=$(dirname "$CONTAINERD_CONFIG")/$entry
		if [[ $entry == "$file" ]]; then
			return 0
		fi
		# A glob in the last element only, in the same directory.
		# shellcheck disable=SC2053 # the right side is a pattern on purpose
		if [[ $(dirname "$entry") == "$(dirname "$file")" && $(basename "$file") == $(basename "$entry") ]]; then
			return 0
		fi
	done < <(grep -oE "\"[^\"]*\"|'[^']*'" <<<"$value" || true)
	return 1
}

# ensure_import makes containerd's config import the drop-in directory,
# touching nothing else in the file. Sets changed=1 if it edited.
ensure_import() {
	local cfg glob value
	cfg=$(host "$CONTAINERD_CONFIG")
	glob="$DROPIN_DIR/*.toml"
	if [[ ! -e $cfg ]]; then
		# containerd reads no file at all when its config is absent, not
		# even the imports its built-in defaults list; a file holding only
		# the import leaves every other default in force.
		mkdir -p "$(dirname "$cfg")"
		printf '%s\nversion = 3\nimports = ["%s"]\n' "$MARKER" "$glob" >"$cfg"
		log "created $CONTAINERD_CONFIG importing $glob"
		changed=1
		return 0
	fi
	value=$(top_level_imports "$cfg")
	if imports_cover "$value" "$DROPIN"; then
		return 0
	fi
	[[ -e $cfg.stockade-backup ]] || cp -p "$cfg" "$cfg.stockade-backup"
	if [[ -n $value ]]; then
		# Prepend to the existing array, right after its "[": valid TOML
		# whatever follows (TOML allows a trailing comma in arrays).
		awk -v entry="\"$glob\", " -v marker="$MARKER" '
		!done && !header && /^[ \t]*\[/ { header = 1 }
		!done && !header && /^[ \t]*("imports"|\047imports\047|imports)[ \t]*=/ {
			i = index($0, "=") + index(substr($0, index($0, "=")), "[") - 1
			print marker
			print substr($0, 1, i) entry substr($0, i + 1)
			done = 1; next
		}
		{ print }' "$cfg" >"$cfg.stockade-new"
	else
		# A top-level key must come before the first table header.
		awk -v line="imports = [\"$glob\"]" -v marker="$MARKER" '
		!done && /^[ \t]*\[/ { print marker; print line; print ""; done = 1 }
		{ print }
		END { if (!done) { print marker; print line } }' "$cfg" >"$cfg.stockade-new"
	fi
	chmod --reference="$cfg" "$cfg.stockade-new"
	mv -f "$cfg.stockade-new" "$cfg"
	log "added $glob to the imports of $CONTAINERD_CONFIG (backup: $CONTAINERD_CONFIG.stockade-backup)"
	changed=1
}

# check_containerd refuses containerd 1.x, which cannot read the version 3
# drop-in, and makes sure the edited config loads and names the handler
# before containerd is restarted with it.
check_containerd() {
	local version dump
	[[ $DRY_RUN == 1 ]] && { on_host containerd --version; return 0; }
	version=$(on_host containerd --version) || die "cannot run containerd on the host"
	[[ $version =~ [[:space:]]v?([0-9]+)\. ]] || die "cannot parse containerd version: $version"
	((BASH_REMATCH[1] >= 2)) || die "containerd 2.x required (config version 3), found: $version"
	dump=$(on_host containerd --config "$CONTAINERD_CONFIG" config dump) ||
		die "containerd rejects $CONTAINERD_CONFIG after the edit; original kept as $CONTAINERD_CONFIG.stockade-backup"
	grep -qF "containerd.runtimes.stockade]" <<<"$dump" ||
		die "containerd's merged config has no stockade runtime: is $DROPIN_DIR imported?"
}

# label_node sets (value "true") or removes (value null) the node label
# through the API server, with the pod's service account.
label_node() {
	local value=$1 sa=/var/run/secrets/kubernetes.io/serviceaccount
	[[ -n $NODE_NAME ]] || { log "NODE_NAME unset: not labelling"; return 0; }
	local body="{\"metadata\":{\"labels\":{\"$NODE_LABEL\":$value}}}"
	if [[ $DRY_RUN == 1 ]]; then
		log "dry-run: PATCH node $NODE_NAME $body"
		return 0
	fi
	curl -fsS --cacert "$sa/ca.crt" -H "Authorization: Bearer $(cat "$sa/token")" \
		-X PATCH -H "Content-Type: application/merge-patch+json" --data "$body" \
		"https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}/api/v1/nodes/${NODE_NAME}" >/dev/null ||
		die "cannot label node $NODE_NAME"
	log "node $NODE_NAME: $NODE_LABEL=$value"
}

restart_containerd() {
	log "restarting $CONTAINERD_SERVICE"
	on_host systemctl restart "$CONTAINERD_SERVICE"
	[[ $DRY_RUN == 1 ]] && return 0
	for _ in $(seq 60); do
		on_host systemctl is-active --quiet "$CONTAINERD_SERVICE" && return 0
		sleep 1
	done
	die "$CONTAINERD_SERVICE is not active 60s after the restart"
}

do_install() {
	# New binaries need no restart: containerd starts the shim per pod.
	install_file "$PAYLOAD_DIR/bin/$SHIM" "$(host "$BIN_DIR/$SHIM")" 0755
	install_file "$PAYLOAD_DIR/bin/stockade" "$(host "$BIN_DIR/stockade")" 0755
	# The node config is the operator's once it exists: never overwritten.
	if [[ ! -e $(host "$STOCKADE_DIR/config.toml") ]]; then
		install_file "$PAYLOAD_DIR/config.toml" "$(host "$STOCKADE_DIR/config.toml")" 0644
	fi
	# A node that cannot enforce what the config requires gets no handler.
	on_host "$BIN_DIR/stockade" check --config "$STOCKADE_DIR/config.toml" ||
		die "this node lacks what $STOCKADE_DIR/config.toml requires (stockade check above)"
	changed=0
	install_file "$PAYLOAD_DIR/containerd/stockade.toml" "$(host "$DROPIN")" 0644
	ensure_import
	if ((changed)); then
		check_containerd
		restart_containerd
	else
		log "containerd already configured: not restarting it"
	fi
	label_node '"true"'
	log "installed"
}

do_uninstall() {
	# Unlabel first, so the scheduler stops sending stockade pods here.
	label_node null
	if [[ -e $(host "$DROPIN") ]]; then
		rm -f "$(host "$DROPIN")"
		log "removed $DROPIN"
		restart_containerd
	fi
	# The imports line stays: other drop-ins may rely on it by now.
	rm -f "$(host "$BIN_DIR/$SHIM")" "$(host "$BIN_DIR/stockade")"
	if [[ $PURGE == 1 ]]; then
		rm -f "$(host "$STOCKADE_DIR/config.toml")"
	fi
	log "uninstalled (pods still running on stockade keep their shims until they end)"
}

# wait_for_termination keeps the DaemonSet pod running. The script is the
# container's PID 1, which ignores SIGTERM unless it handles it.
wait_for_termination() {
	trap 'exit 0' TERM INT
	sleep infinity &
	wait
}

main() {
	case ${1:-} in
	install) do_install ;;
	uninstall) do_uninstall ;;
	run-install) do_install; wait_for_termination ;;
	run-uninstall) do_uninstall; wait_for_termination ;;
	*) die "usage: $0 install|uninstall|run-install|run-uninstall" ;;
	esac
}

main "$@"
