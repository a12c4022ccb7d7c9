#!/usr/bin/env bash
# Builds the kubectl-kiln release archives and the krew manifest that points at them.
# Usage: hack/krew.sh VERSION BASE_URL
set -euo pipefail
version=${1:?usage: hack/krew.sh VERSION BASE_URL}
base_url=${2:?usage: hack/krew.sh VERSION BASE_URL}
cd "$(dirname "$0")/.."
# Only this script's files are replaced: make release writes the rest of dist/ beside them.
mkdir -p dist
rm -rf dist/kubectl-kiln_* dist/kiln.yaml dist/linux_amd64 dist/linux_arm64 dist/darwin_arm64
# darwin is left out until internal/controlplane builds there (it uses Linux-only syscalls).
for plat in linux_amd64 linux_arm64; do
  dir=dist/$plat
  mkdir -p "$dir"
  GOOS=${plat%_*} GOARCH=${plat#*_} CGO_ENABLED=0 go build -trimpath -o "$dir/kubectl-kiln" ./cmd/kubectl-kiln
  cp LICENSE "$dir/"
  tar -C "$dir" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - . | gzip -n > "dist/kubectl-kiln_$plat.tar.gz"
  rm -rf "$dir"
  export "SHA_$plat=$(sha256sum "dist/kubectl-kiln_$plat.tar.gz" | cut -d' ' -f1)"
done
VERSION=$version BASE_URL=$base_url envsubst < plugins/krew/kiln.yaml.tmpl > dist/kiln.yaml
echo "wrote dist/kiln.yaml and the archives in dist/"
