#!/usr/bin/env bash
# Captures what the emulator sends, with tshark's TDS dissector, so it can be compared field by
# field with the protocol digest's test vectors from real servers (README.md, "Fingerprint").
#
# Needs root (capture on lo), tshark and FreeTDS's tsql (apt-get install -y tshark freetds-bin)
# and python3. Run from the workspace root after `cargo build -p tds-emulator`:
#   crates/tds-emulator/scripts/fingerprint.sh [OUT_DIR]
# For each server setting it runs tsql at TDS 7.4 and 7.1 (`SELECT 1`), and sends MS-SSTDS 4.1's
# 4-option PRELOGIN from python; every capture is bounded by `-a duration:` and filtered to the
# emulator's port. It prints the decoded TDS layer of every server packet.
set -euo pipefail

OUT=${1:-target/fingerprint}
BIN=${TDS_EMULATOR:-target/debug/tds-emulator}
PORT=${FINGERPRINT_PORT:-14399}
mkdir -p "$OUT"

# MS-SSTDS 4.1 (digest V1b): VERSION, ENCRYPTION=OFF, INSTOPT "MSSQLServer", THREADID.
V1B=1201003400000100000015000601001b000102001c000c0300280004ff080001550000004d5353514c5365727665720080190000

for setting in none off force strict-and-legacy; do
    pcap="$OUT/$setting.pcap"
    "$BIN" --listen "127.0.0.1:$PORT" --encryption "$setting" >"$OUT/$setting.emulator.log" 2>&1 &
    emulator=$!
    tshark -q -i lo -f "tcp port $PORT" -a duration:12 -w "$pcap" >"$OUT/$setting.tshark.log" 2>&1 &
    capture=$!
    sleep 2
    for version in 7.4 7.1; do
        printf 'SELECT 1\ngo\nexit\n' |
            FREETDSCONF=/dev/null TDSVER=$version timeout 10 \
                tsql -H 127.0.0.1 -p "$PORT" -U sa -P 'Password123!' >/dev/null 2>&1 || true
    done
    python3 - "$PORT" "$V1B" <<'PY'
import socket, sys
port, hexbytes = int(sys.argv[1]), sys.argv[2]
with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
    s.sendall(bytes.fromhex(hexbytes))
    s.recv(4096)
PY
    wait "$capture" || true
    kill -INT "$emulator" 2>/dev/null || true
    wait "$emulator" 2>/dev/null || true
    echo "=== setting $setting: server packets (tcp.srcport == $PORT)"
    tshark -r "$pcap" -d "tcp.port==$PORT,tds" -Y "tcp.srcport == $PORT && tds" -O tds 2>/dev/null |
        grep -v '^Frame\|^Ethernet\|^Internet\|^Transmission\|^Null/Loopback' || true
done
