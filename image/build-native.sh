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
# The kernel fast path's BPF object, beside the addons (fast-path.ts loads it from there).
clang -O2 -g -target bpf -Wall -I/usr/include/x86_64-linux-gnu -I/usr/include/"$(uname -m)"-linux-gnu \
  -c appliance/dataplane/port/native/fast_path.bpf.c -o appliance/dataplane/port/native/build/Release/fast_path.bpf.o >&2
