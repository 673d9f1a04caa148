#!/usr/bin/env bash
# Installs the built gatekeeper as a system service (Debian 12, systemd): the application under
# /opt/gatekeeper, `gatekeeper` on the PATH, the systemd units, the users, /run/gatekeeper and an
# example port pair. Run `bash image/install.sh` first (it builds dist/ and node_modules/).
#   bash image/install-system.sh                      install (as root); also upgrades in place
#   DESTDIR=/tmp/stage bash image/install-system.sh   only lay out the files under /tmp/stage
# It never starts, stops or enables a service: it prints what to do next.
set -euo pipefail
cd "$(dirname "$0")/.."

destdir="${DESTDIR:-}"
app=/opt/gatekeeper
say() { echo "install-system: $*"; }
die() { echo "install-system: $*" >&2; exit 1; }

[ -n "$destdir" ] || [ "$(id -u)" = 0 ] || die "run as root (or set DESTDIR to stage the files)"
[ -f dist/appliance/cli/gatekeeper.js ] || die "dist/ is not built: run bash image/install.sh first"
[ -d node_modules/cap ] || die "node_modules/ is missing: run bash image/install.sh first"
if [ -z "$destdir" ]; then
  # The units run /usr/bin/node (Debian's nodejs or NodeSource's package put it there).
  /usr/bin/node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null ||
    die "the units run /usr/bin/node, which must be Node.js 20 or newer"
fi

# The application: staged next to the old one, then swapped in, so a failed copy changes nothing
# and running processes keep the files they have open until they are restarted.
stage="$destdir$app.new"
rm -rf "$stage"
mkdir -p "$stage"
cp -a package.json package-lock.json dist docs node_modules "$stage/"
# What the running code loads from its place in the source tree: the web UI, and the dataplane's
# native addons and the kernel fast path's BPF object when they were built.
[ -f appliance/mgmt/ui/index.html ] || die "appliance/mgmt/ui is missing"
mkdir -p "$stage/appliance/mgmt"
cp -a appliance/mgmt/ui "$stage/appliance/mgmt/"
for native in batch_port.node fast_path.node fast_path.bpf.o; do
  native=appliance/dataplane/port/native/build/Release/$native
  if [ -f "$native" ]; then
    install -D -m 0644 "$native" "$stage/$native"
  fi
done
(cd "$stage" && npm prune --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
chmod 0755 "$stage/dist/appliance/cli/gatekeeper.js"
[ "$(id -u)" != 0 ] || chown -R 0:0 "$stage"
if [ -e "$destdir$app" ]; then
  rm -rf "$destdir$app.old"
  mv "$destdir$app" "$destdir$app.old"
fi
mv "$stage" "$destdir$app"
rm -rf "$destdir$app.old"
say "application in $destdir$app"

install -d "$destdir/usr/local/bin"
ln -sfn "$app/dist/appliance/cli/gatekeeper.js" "$destdir/usr/local/bin/gatekeeper"

install -d "$destdir/etc/systemd/system" "$destdir/etc/sysusers.d" "$destdir/etc/tmpfiles.d" "$destdir/etc/gatekeeper/pairs"
install -m 0644 systemd/gatekeeper-mgmt.service systemd/gatekeeper-dataplane@.service "$destdir/etc/systemd/system/"
install -m 0644 systemd/gatekeeper.sysusers "$destdir/etc/sysusers.d/gatekeeper.conf"
install -m 0644 systemd/gatekeeper.tmpfiles "$destdir/etc/tmpfiles.d/gatekeeper.conf"
install -m 0644 systemd/pair.env.example "$destdir/etc/gatekeeper/pairs/example.env.sample"
install -d -m 0755 "$destdir/var/lib/gatekeeper" "$destdir/var/lib/gatekeeper/pairs"
say "units in $destdir/etc/systemd/system, port pair example in $destdir/etc/gatekeeper/pairs/example.env.sample"

if [ -n "$destdir" ]; then
  say "staged under $destdir (no users, directories or systemd changes made)"
  exit 0
fi

systemd-sysusers /etc/sysusers.d/gatekeeper.conf
systemd-tmpfiles --create /etc/tmpfiles.d/gatekeeper.conf
# Management's state directory exists before its first start, so the first admin can be added.
install -d -m 0700 -o gatekeeper -g gatekeeper /var/lib/gatekeeper/mgmt
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
else
  say "systemd is not running here: the units take effect when it is"
fi

cat <<'EOF'

Next steps (see /opt/gatekeeper/docs/operations.md):
  1. First administrator of the web UI (as the service user, so the service can read it):
       runuser -u gatekeeper -- gatekeeper user add admin --role admin --state-dir /var/lib/gatekeeper/mgmt
  2. Management service (https://<management address>:8443):
       systemctl enable --now gatekeeper-mgmt
  3. For each port pair NAME:
       cp /etc/gatekeeper/pairs/example.env.sample /etc/gatekeeper/pairs/NAME.env   # set INSIDE= and OUTSIDE=
       gatekeeper policy check POLICY.yaml
       install -D -m 0640 POLICY.yaml /var/lib/gatekeeper/pairs/NAME/policy.yaml
       systemctl enable --now gatekeeper-dataplane@NAME
EOF
