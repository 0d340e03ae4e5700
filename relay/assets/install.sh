#!/bin/sh
# ZedOps agent installer, served by a ZedOps relay at /install.sh. On the server to enrol:
#
#   curl -fsSL https://relay.example.com/install.sh | ZEDOPS_TOKEN=zr_... sh [-s -- --name NAME]
#
# as root, or as a user who may use sudo. It downloads the agent for this machine from the relay
# (as the user who runs it), checks the download against the SHA-256 the relay publishes and,
# where `minisign` is installed, against the ZedOps release key's signature, and runs `zedops-agent install` as root (through sudo when not root already), which sets the agent
# up as a systemd service (user zedops-agent, settings and token in /etc/zedops-agent/agent.env,
# 0600 root) and waits until it has enrolled and connected, or says why it could not.
#
# The registration token never goes on a command line (where `ps` shows it to every user and
# sudo logs it): it comes in through the environment (ZEDOPS_TOKEN) or a file, and reaches the
# installer as a 0600 file in a private temporary directory, removed at the end.
#
# Options:
#   --token-file F   read the token from a file instead of ZEDOPS_TOKEN
#   --token T        the token as an argument (shows up in `ps`; prefer ZEDOPS_TOKEN)
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
# The release key (minisign public key) the relay was built with; empty in development builds.
RELEASE_KEY='@ZEDOPS_RELEASE_KEY@'

say() { printf 'zedops install: %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }

usage() {
  cat >&2 <<USAGE
usage: curl -fsSL $RELAY_URL/install.sh | ZEDOPS_TOKEN=zr_... sh [-s -- options]
  (as root, or as a user who may use sudo)
  --token-file F   read the token from a file instead of ZEDOPS_TOKEN
  --token T        the token as an argument (shows up in ps; prefer ZEDOPS_TOKEN)
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
  # Kept in a shell variable only: the installer gets it as a file, not from the environment.
  unset ZEDOPS_TOKEN ZEDOPS_TOKEN_FILE
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
          --token)
            TOKEN=$2
            say "warning: --token puts the token on a command line, where ps shows it; pass it as ZEDOPS_TOKEN=... instead"
            ;;
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
  # Root installs directly; anyone else through sudo, asked for only at the install step.
  AS_ROOT=
  if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 \
      || fail "installing a system service needs root, and sudo is not installed: run this as root (su -), the same way"
    AS_ROOT=sudo
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
  if [ -n "$RELEASE_KEY" ] && command -v minisign >/dev/null 2>&1; then
    fetch "$url.minisig" "$tmp/zedops-agent.minisig" \
      || fail "cannot download $url.minisig: the relay serves no signature for $platform; ask its admin to serve a signed release (scripts/release)"
    minisign -V -q -P "$RELEASE_KEY" -m "$tmp/zedops-agent" -x "$tmp/zedops-agent.minisig" >/dev/null 2>&1 \
      || fail "signature check failed, nothing was installed: the agent from $RELAY_URL is not signed by the ZedOps release key $RELEASE_KEY; ask the relay's admin"
    say "signature verified (release key $RELEASE_KEY)"
  elif [ -n "$RELEASE_KEY" ]; then
    say "minisign is not installed, so only the SHA-256 was checked, not the release signature (apt-get install minisign to check it too)"
  fi
  chmod 0755 "$tmp/zedops-agent"
  "$tmp/zedops-agent" --version >/dev/null 2>&1 \
    || fail "the downloaded agent does not run here: if ${TMPDIR:-/tmp} is mounted noexec, run again with TMPDIR set to a directory that allows programs"

  set -- install --relay "$RELAY_URL"
  if [ -n "$TOKEN" ]; then
    # Written before anything else can see the file: the directory is the user's (mktemp -d).
    (umask 077 && printf '%s\n' "$TOKEN" >"$tmp/token") || fail "cannot write the token to $tmp"
    set -- "$@" --token-file "$tmp/token"
  fi
  if [ -n "$NAME" ]; then set -- "$@" --name "$NAME"; fi
  if [ -n "$CA_FILE" ]; then set -- "$@" --ca-file "$CA_FILE"; fi
  if [ -n "$INSECURE" ]; then set -- "$@" --insecure; fi
  if [ -n "$NO_START" ]; then set -- "$@" --no-start; fi
  if [ -n "$ROOT" ]; then set -- "$@" --root "$ROOT"; fi
  if [ -n "$AS_ROOT" ]; then
    say "installing as root through sudo"
    # Not exec: the EXIT trap still removes the temporary directory and the token in it.
    sudo "$tmp/zedops-agent" "$@"
  else
    "$tmp/zedops-agent" "$@"
  fi
}

main "$@"
