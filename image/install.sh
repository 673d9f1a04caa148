#!/usr/bin/env bash
# Installs everything the gatekeeper needs on Debian 12 (as root) and builds it.
#   bash image/install.sh          install and build
#   bash image/install.sh --lab    ... then start the lab demo (Ctrl-C removes it)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "image/install.sh: run as root (it installs packages and the lab creates network namespaces)" >&2
  exit 1
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "image/install.sh: Node.js 20 or newer is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# libpcap-dev and a compiler for the native addons, clang and libbpf-dev for the kernel fast path's
# BPF programs and their loader; ip and ethtool, which the dataplane calls; openssl;
# and the real tools the lab, tests and benchmarks drive: hosts (ping, nc, iperf3, nmap, tcpdump,
# tshark, trafgen), a SIEM receiver (rsyslog with TLS and RELP), a browser (chromium), systemd-analyze,
# a Modbus client and server (mbpoll; pymodbus, whose server module imports serial and serial_asyncio);
# the IEEE OUI registry the asset inventory names vendors from (ieee-data); and the identity sources the
# asset lab drives (lldpd, a DHCP client in busybox, dnsmasq as its server).
packages=(libpcap-dev g++ make clang libbpf-dev python3 iproute2 ethtool nftables iputils-ping netcat-openbsd
  iperf3 nmap tcpdump tshark netsniff-ng procps openssl rsyslog rsyslog-gnutls rsyslog-relp gnutls-bin chromium
  systemd mbpoll python3-pymodbus python3-serial python3-serial-asyncio
  ieee-data lldpd busybox dnsmasq-base)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The appliance itself must stay silent on the wire: the packaged lldpd daemon is not wanted here
  # (the lab runs its own, inside the hosts' namespaces).
  if [[ " ${missing[*]} " == *" lldpd "* ]]; then
    systemctl disable --now lldpd >/dev/null 2>&1 || service lldpd stop >/dev/null 2>&1 || true
  fi
fi

npm ci --no-audit --no-fund --loglevel=error
npm run --silent build

if [ "${1:-}" = "--lab" ]; then
  exec node dist/appliance/cli/gatekeeper.js lab
fi
echo "gatekeeper installed: node dist/appliance/cli/gatekeeper.js --help (as services: bash image/install-system.sh)"
