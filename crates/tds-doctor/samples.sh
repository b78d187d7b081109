#!/usr/bin/env bash
# Regenerates the sample outputs in docs/doctor.md: runs `tds-doctor probe` against the
# emulator in each encryption setting (and two TLS variants), pasting exactly what it printed.
#
#   crates/tds-doctor/samples.sh > /tmp/samples.md
#
# Needs only cargo; the emulator listens on 127.0.0.1 with an ephemeral port.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p tds-emulator -p tds-doctor
bin=target/debug

echo "Measured at commit $(git rev-parse --short HEAD) with: crates/tds-doctor/samples.sh"
echo

# Starts the emulator with "$@"; sets pid, port, ca, log.
start() {
    log=$(mktemp)
    "$bin/tds-emulator" --listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
    pid=$!
    port="" ca=""
    for _ in $(seq 1 100); do
        port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | grep -o '[0-9]*$' || true)
        ca=$(sed -n 's/^CA certificate: //p' "$log")
        [ -n "$port" ] && [ -n "$ca" ] && break
        sleep 0.1
    done
}

stop() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$log" "$ca"
}

run() {
    local title=$1; shift
    start "$@"
    echo "### $title"
    echo
    echo '```console'
    echo "\$ tds-emulator --listen 127.0.0.1:0 $*"
    echo "\$ tds-doctor probe 127.0.0.1,$port --ca $ca --timeout 2"
    local code=0
    "$bin/tds-doctor" probe "127.0.0.1,$port" --ca "$ca" --timeout 2 || code=$?
    echo "\$ echo \$?"
    echo "$code"
    echo '```'
    echo
    stop
}

run "none (no TLS at all)" --encryption none
run "off (SQL Server's default)" --encryption off
run "force (Force Encryption = Yes)" --encryption force
run "strict-only (Force Strict Encryption = Yes)" --encryption strict-only
run "strict-and-legacy (SQL Server 2022, strict available)" --encryption strict-and-legacy
run "force, with a reset right after the ClientHello" --encryption force --fault reset-after-client-hello
run "off, TLS 1.3 only inside TDS 7" --encryption off --tds7-tls 1.3

# explain, connect and --json against Force Encryption. The password is the emulator's
# default; connect reads the connection string from stdin and never prints it.
start --encryption force
cs="Server=127.0.0.1,$port;User Id=sa;Password=Password123!;Encrypt=DANGER_PLAINTEXT;TrustServerCertificateCA=$ca"
shown="Server=127.0.0.1,$port;User Id=sa;Password=\$PASSWORD;Encrypt=DANGER_PLAINTEXT;TrustServerCertificateCA=$ca"
echo "### explain and connect: a client at Encrypt=DANGER_PLAINTEXT against Force Encryption"
echo
echo '```console'
echo "\$ tds-emulator --listen 127.0.0.1:0 --encryption force"
echo "\$ tds-doctor explain 127.0.0.1,$port --timeout 2 --connection-string - <<< \"$shown\""
code=0
"$bin/tds-doctor" explain "127.0.0.1,$port" --timeout 2 --connection-string - <<<"$cs" || code=$?
echo "\$ echo \$?"
echo "$code"
echo "\$ tds-doctor connect - <<< \"$shown\""
code=0
"$bin/tds-doctor" connect - <<<"$cs" || code=$?
echo "\$ echo \$?"
echo "$code"
echo '```'
echo
echo "### --json (same server)"
echo
echo '```console'
echo "\$ tds-doctor probe 127.0.0.1,$port --ca $ca --timeout 2 --json"
"$bin/tds-doctor" probe "127.0.0.1,$port" --ca "$ca" --timeout 2 --json || true
echo '```'
stop
