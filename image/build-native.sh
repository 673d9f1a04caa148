#!/bin/sh
# Builds the dataplane's batched port I/O addon (appliance/dataplane/port/native) offline: node-gyp
# as bundled with npm, headers of the installed Node.js (/usr/include/node), never a download.
set -eu
cd "$(dirname "$0")/.."
node_prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
if [ ! -f "$node_prefix/include/node/node_api.h" ]; then
  echo "build-native: no Node.js headers under $node_prefix/include/node" >&2
  exit 1
fi
gyp="${npm_config_node_gyp:-}"
if [ -z "$gyp" ] || [ ! -f "$gyp" ]; then
  gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
fi
# Compiler output goes to stderr, so `npm run -s bench -- --json` prints nothing but JSON on stdout.
node "$gyp" rebuild --silent --nodedir="$node_prefix" -C appliance/dataplane/port/native >&2
