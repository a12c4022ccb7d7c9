#!/usr/bin/env bash
# Installs the Debian packages a real local node needs, once: quiet when they are all there.
#   runc                          the OCI runtime containerd starts containers with
#   containernetworking-plugins   CNI bridge, host-local and portmap for pod networking
#   iptables, conntrack           kube-proxy's Service rules
#   debootstrap                   Debian root filesystems for the examples' Python images
# Without root nothing is installed: the local Kiln then uses simulated nodes and says why.
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in runc containernetworking-plugins iptables conntrack debootstrap; do
	have "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "a real local node needs ${need[*]}; install as root: apt-get install -y ${need[*]} (simulated nodes are used meanwhile)" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "installed ${need[*]}"
