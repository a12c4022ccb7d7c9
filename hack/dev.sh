#!/usr/bin/env bash
# make dev: set up what this machine lacks, start the local Kiln and run the example workflow.
# As root with apt, the first run installs the Debian packages a real node needs
# (hack/install-node-deps.sh) before `dev up`, so the workflow runs on real pods; elsewhere
# `dev up` says in one line why there is no real node and uses simulated nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
cache=${KILN_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/tools}
first=
compgen -G "$cache/kube-apiserver-*/kube-apiserver" >/dev/null || first=1
missing=()
for pkg in runc containernetworking-plugins iptables conntrack debootstrap; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
	if [ ${#missing[@]} -gt 0 ] || [ -n "$first" ]; then
		what="building the Kubernetes components from Go modules"
		[ ${#missing[@]} -gt 0 ] && what="installing ${missing[*]} with apt for a real node, then $what"
		echo "First run: $what, then the example images and the workflow — about 45 minutes on 2 cores (cached: about 8 minutes after)."
	fi
	[ ${#missing[@]} -eq 0 ] || hack/install-node-deps.sh
elif [ -n "$first" ]; then
	echo "First run: building the Kubernetes components from Go modules, then the workflow on simulated nodes — about 35 minutes on 2 cores (cached: a few minutes after)."
fi
status=0
bin/kubectl-kiln dev up && bin/kubectl-kiln dev examples || status=$?
elapsed=$((SECONDS - start))
printf 'make dev took %dm%02ds%s\n' $((elapsed / 60)) $((elapsed % 60)) "$([ $status -eq 0 ] || echo " (failed)")"
exit $status
