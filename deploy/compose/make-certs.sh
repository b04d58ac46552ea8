#!/usr/bin/env bash
# Makes the certificates and keys of the compose demo federation (1 province, 2 cities, 4 counties):
#
#   certs/ca/ca.pem, ca.key          the federation CA (never mounted into a container; keep ca.key to yourself)
#   certs/federation.key             the federation-wide pseudonym key (the same file on every node)
#   certs/CODE/                      mounted read-only at /etc/ecovol/certs of node CODE: ca.pem, CODE.pem (node
#                                    certificate, also the office TLS certificate), CODE.key, federation.key
#   certs/keys/CODE/node.key         mounted read-only at /etc/ecovol/keys of node CODE: the node key that encrypts
#                                    identity and phone numbers at rest
#
# Each node certificate names the node ({code}.{level}.node.ecovol, checked by its children and parent) and the
# hosts the office port is reached by: the compose service name, localhost and 127.0.0.1.
#
# Usage: deploy/compose/make-certs.sh [DIR]        (default: deploy/compose/certs)
# The ecovol binary: $ECOVOL, else `ecovol` on PATH, else this repository's target/release or target/debug build.
# Run it again at will: it makes only what is missing (delete a file to make it anew).
#
# Demo only: the node runs as uid 65532 in the container, so the files for the containers are made readable by
# all (0644) inside folders only you can reach (DIR is 0700). In production use Kubernetes Secrets or the systemd
# layout of deploy/README.md.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$here/certs}"

if [ -n "${ECOVOL:-}" ]; then
  ecovol="$ECOVOL"
elif command -v ecovol >/dev/null 2>&1; then
  ecovol="$(command -v ecovol)"
elif [ -x "$repo/target/release/ecovol" ]; then
  ecovol="$repo/target/release/ecovol"
elif [ -x "$repo/target/debug/ecovol" ]; then
  ecovol="$repo/target/debug/ecovol"
else
  echo "make-certs.sh: no ecovol binary: set ECOVOL, put ecovol on PATH, or run: cargo build -p ecovol-node --bin ecovol" >&2
  exit 2
fi

# code and compose service of every node, parents first.
nodes=(
  "320000 province-320000"
  "320100 city-320100"
  "320200 city-320200"
  "320102 county-320102"
  "320104 county-320104"
  "320205 county-320205"
  "320206 county-320206"
)

umask 077
mkdir -p "$out"
chmod 0700 "$out"
[ -f "$out/.gitignore" ] || printf '# made by make-certs.sh: certificates and keys are never committed\n*\n' >"$out/.gitignore"

if [ ! -f "$out/ca/ca.pem" ]; then
  "$ecovol" certs ca --dir "$out/ca" --name jiangsu-compose >/dev/null
  echo "made the federation CA: $out/ca/ca.pem"
fi
if [ ! -f "$out/federation.key" ]; then
  "$ecovol" certs federation-key --out "$out/federation.key" >/dev/null 2>&1
  echo "made the federation pseudonym key: $out/federation.key"
fi

for entry in "${nodes[@]}"; do
  read -r code service <<<"$entry"
  dir="$out/$code"
  keys="$out/keys/$code"
  mkdir -p "$dir" "$keys"
  if [ ! -f "$dir/$code.pem" ]; then
    "$ecovol" certs node --dir "$dir" --ca-cert "$out/ca/ca.pem" --ca-key "$out/ca/ca.key" --code "$code" \
      --host "$service" --host localhost --host 127.0.0.1 >/dev/null
    echo "made the certificate of node $code (hosts $service, localhost, 127.0.0.1): $dir/$code.pem"
  fi
  cp "$out/ca/ca.pem" "$dir/ca.pem"
  cp "$out/federation.key" "$dir/federation.key"
  if [ ! -f "$keys/node.key" ]; then
    "$ecovol" admin keygen "$keys/node.key" >/dev/null
    echo "made the node key of $code: $keys/node.key"
  fi
  # The container's user (65532) reads these through the read-only mounts.
  chmod 0755 "$dir" "$keys" "$out/keys"
  chmod 0644 "$dir"/* "$keys/node.key"
done
echo "certificates and keys of the compose federation are in $out"
