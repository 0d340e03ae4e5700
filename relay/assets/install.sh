#!/bin/sh
# ZedOps agent installer, served by a ZedOps relay at /install.sh. On the server to enrol:
#
#   curl -fsSL https://relay.example.com/install.sh | sudo sh -s -- --token zr_... [--name NAME]
#
# It downloads the agent for this machine from the relay, checks the download against the
# SHA-256 the relay publishes, and runs `zedops-agent install`, which sets the agent up as a
# systemd service (user zedops-agent, settings and token in /etc/zedops-agent/agent.env, 0600).
#
# Options:
#   --token T        single-use registration token (`zedops-relay token create` on the relay)
#   --token-file F   read the token from a file instead (or set ZEDOPS_TOKEN)
#   --name N         name to enrol under (default: this host's name)
#   --relay URL      relay to download from and connect to (default: the one this came from)
#   --ca-file F      the relay's private CA certificate (PEM), for download and service
#   --insecure       allow plaintext http:// to a relay that is not this machine
#   --no-start       install, but do not enable or start the service
#   --root DIR       install into DIR instead of this system (packaging, tests)
#
# Everything runs from main at the end, so a download cut short runs nothing.
set -eu

# Filled in by the relay that served this script.
RELAY_URL='@ZEDOPS_RELAY_URL@'

say() { printf 'zedops install: %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }

usage() {
  cat >&2 <<USAGE
usage: curl -fsSL $RELAY_URL/install.sh | sudo sh -s -- --token zr_... [options]
  --token T        single-use registration token (zedops-relay token create, on the relay)
  --token-file F   read the token from a file instead (or set ZEDOPS_TOKEN)
  --name N         name to enrol under (default: this host's name)
  --relay URL      relay to download from and connect to (default: $RELAY_URL)
  --ca-file F      the relay's private CA certificate (PEM)
  --insecure       allow plaintext http:// to a relay that is not this machine
  --no-start       install, but do not enable or start the service
  --root DIR       install into DIR instead of this system (packaging, tests)
USAGE
}

# fetch URL FILE: download with curl or wget, trusting --ca-file when given.
fetch() {
  if command -v curl >/dev/null 2>&1; then
    if [ -n "$CA_FILE" ]; then
      curl -fsSL --cacert "$CA_FILE" -o "$2" "$1"
    else
      curl -fsSL -o "$2" "$1"
    fi
  elif command -v wget >/dev/null 2>&1; then
    if [ -n "$CA_FILE" ]; then
      wget -q --ca-certificate="$CA_FILE" -O "$2" "$1"
    else
      wget -q -O "$2" "$1"
    fi
  else
    fail "neither curl nor wget is installed; install one of them and run again"
  fi
}

# sha256 FILE: the file's SHA-256 in lower-case hex.
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d ' ' -f 1
  elif command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 "$1" | sed 's/^.*= *//'
  else
    fail "found no sha256sum, shasum or openssl to check the download with; install coreutils and run again"
  fi
}

# platform: linux-x86_64 or linux-aarch64, the names the relay serves agents under.
platform() {
  os=$(uname -s)
  case "$os" in
    Linux) os=linux ;;
    *) fail "the agent installs as a systemd service on Linux; this is $os, which the installer does not support" ;;
  esac
  arch=$(uname -m)
  case "$arch" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) fail "there is no ZedOps agent for the $arch architecture (the relay serves x86_64 and aarch64); build one from source with \`cargo build --release -p zedops-agent\`" ;;
  esac
  echo "$os-$arch"
}

main() {
  TOKEN=${ZEDOPS_TOKEN:-}
  TOKEN_FILE=
  NAME=
  CA_FILE=
  INSECURE=
  NO_START=
  ROOT=
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --token | --token-file | --name | --relay | --ca-file | --root)
        [ "$#" -ge 2 ] || fail "$1 needs a value"
        case "$1" in
          --token) TOKEN=$2 ;;
          --token-file) TOKEN_FILE=$2 ;;
          --name) NAME=$2 ;;
          --relay) RELAY_URL=$2 ;;
          --ca-file) CA_FILE=$2 ;;
          --root) ROOT=$2 ;;
        esac
        shift 2
        ;;
      --insecure) INSECURE=1; shift ;;
      --no-start) NO_START=1; shift ;;
      -h | --help) usage; exit 0 ;;
      *) fail "unknown option $1 (--help lists them)" ;;
    esac
  done
  case "$RELAY_URL" in
    http://* | https://*) RELAY_URL=${RELAY_URL%/} ;;
    *) fail "the relay URL \"$RELAY_URL\" is not an http:// or https:// URL; pass --relay https://your-relay" ;;
  esac
  if [ -n "$TOKEN_FILE" ]; then
    [ -r "$TOKEN_FILE" ] || fail "cannot read the token file $TOKEN_FILE"
    TOKEN=$(cat "$TOKEN_FILE")
  fi
  if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
    fail "installing a system service needs root: run  curl -fsSL $RELAY_URL/install.sh | sudo sh -s -- --token zr_..."
  fi

  platform=$(platform)
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/zedops-agent.XXXXXX") || fail "cannot create a temporary directory; set TMPDIR to a writable one"
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 1' HUP INT TERM

  url="$RELAY_URL/download/agent/$platform"
  say "downloading the ZedOps agent for $platform from $RELAY_URL"
  fetch "$url.sha256" "$tmp/zedops-agent.sha256" \
    || fail "cannot download $url.sha256: is the relay reachable, and does its admin serve agents (zedops-relay serve --downloads DIR, with zedops-agent-$platform in DIR)?"
  fetch "$url" "$tmp/zedops-agent" || fail "cannot download $url; try again, or ask the relay's admin"
  expected=$(cut -d ' ' -f 1 <"$tmp/zedops-agent.sha256")
  case "$expected" in
    *[!0-9a-f]* | '') fail "the relay's checksum for $platform is malformed; ask the relay's admin" ;;
  esac
  [ "${#expected}" -eq 64 ] || fail "the relay's checksum for $platform is malformed; ask the relay's admin"
  actual=$(sha256 "$tmp/zedops-agent")
  if [ "$actual" != "$expected" ]; then
    fail "checksum mismatch, nothing was installed: the downloaded agent's SHA-256 is $actual but the relay publishes $expected. The download was damaged or altered; try again, and if it persists ask the relay's admin (a relay must be restarted after its agent binaries are replaced)"
  fi
  say "checksum verified (sha256 $actual)"
  chmod 0755 "$tmp/zedops-agent"
  "$tmp/zedops-agent" --version >/dev/null 2>&1 \
    || fail "the downloaded agent does not run here: if ${TMPDIR:-/tmp} is mounted noexec, run again with TMPDIR set to a directory that allows programs"

  set -- install --relay "$RELAY_URL"
  if [ -n "$NAME" ]; then set -- "$@" --name "$NAME"; fi
  if [ -n "$CA_FILE" ]; then set -- "$@" --ca-file "$CA_FILE"; fi
  if [ -n "$INSECURE" ]; then set -- "$@" --insecure; fi
  if [ -n "$NO_START" ]; then set -- "$@" --no-start; fi
  if [ -n "$ROOT" ]; then set -- "$@" --root "$ROOT"; fi
  # The token goes through the environment, which `ps` does not show to other users.
  if [ -n "$TOKEN" ]; then
    ZEDOPS_TOKEN=$TOKEN "$tmp/zedops-agent" "$@"
  else
    "$tmp/zedops-agent" "$@"
  fi
}

main "$@"
