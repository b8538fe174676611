#!/usr/bin/env bash
# Self-test of ssf_peer.py, run by hand: bash tests/ssf-peer/selftest.sh
# keygen, set, a receiver whose JWKS is served by `python3 -m http.server`,
# pushes of good and bad SETs, /received, and a clean SIGTERM.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
peer="$py $here/ssf_peer.py"
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "selftest: FAIL: $*" >&2; exit 1; }

iss=https://srs.example.com aud=https://rp.example.com
$peer keygen --key "$dir/key.pem" --jwks "$dir/jwks.json" --kid k1
$peer keygen --key "$dir/other.pem" --jwks "$dir/other.json" --kid k1
grep -q 'BEGIN PRIVATE KEY' "$dir/key.pem" || fail "key is not PKCS#8"

# The JWKS over HTTP.
(cd "$dir" && exec $py -m http.server 0 --bind 127.0.0.1 >"$dir/http.out" 2>&1) &
pids+=($!)
for _ in $(seq 50); do grep -q 'port' "$dir/http.out" 2>/dev/null && break; sleep 0.1; done
jport=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$dir/http.out" | head -1)
[ -n "$jport" ] || fail "http.server did not start"

$peer receiver --jwks-url "http://127.0.0.1:$jport/jwks.json" --issuer "$iss" --audience "$aud" \
  --respond 503,400:invalid_audience >"$dir/recv.out" 2>"$dir/recv.err" &
rpid=$!
pids+=($rpid)
for _ in $(seq 50); do [ -s "$dir/recv.out" ] && break; sleep 0.1; done
line=$(head -1 "$dir/recv.out")
[[ "$line" =~ ^ssf-peer:\ listening\ on\ (http://127\.0\.0\.1:[0-9]+)$ ]] || fail "first line: $line"
base=${BASH_REMATCH[1]}
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/healthz")" = 204 ] || fail healthz

push() { # push TOKEN [CONTENT-TYPE] -> prints status code; body in $dir/body
  curl -s -o "$dir/body" -w '%{http_code}' -X POST -H "Content-Type: ${2:-application/secevent+jwt}" \
    --data-binary "$1" "$base/push"
}
expect() { # expect WANT-STATUS WANT-ERR TOKEN [CONTENT-TYPE]
  local got; got=$(push "$3" "${4:-}")
  [ "$got" = "$1" ] || fail "want $1 got $got: $(cat "$dir/body")"
  if [ -n "$2" ]; then grep -q "\"err\": \"$2\"" "$dir/body" || fail "want err $2: $(cat "$dir/body")"; fi
  echo "ok $1 ${2:-} $(head -c 160 "$dir/body")"
}

# A valid session-revoked SET, signed here with PyJWT directly.
signed() { # signed KEY.pem KID AUD [CLAIMS-JSON-OVERRIDES]
  $py - "$@" <<'EOF'
import json, sys, time, jwt
key, kid, aud = sys.argv[1:4]
extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
now = int(time.time())
claims = {
    "iss": "https://srs.example.com", "aud": aud, "iat": now, "jti": "j-%d" % time.time_ns(),
    "txn": "event-1",
    "sub_id": {"format": "complex", "user": {"format": "email", "email": "a@example.com"},
               "device": {"format": "opaque", "id": "dev-1"}},
    "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
        "event_timestamp": now, "initiating_entity": "policy",
        "reason_admin": {"en": "Device dev-1 is not compliant"}}},
}
claims.update(extra)
print(jwt.encode(claims, open(key, "rb").read(), algorithm="RS256",
                 headers={"typ": "secevent+jwt", "kid": kid}))
EOF
}

good=$(signed "$dir/key.pem" k1 "$aud")
expect 503 "" "$good"                                  # scripted
expect 400 invalid_audience "$good"                    # scripted
expect 202 "" "$good"
[ ! -s "$dir/body" ] || fail "202 body not empty"
expect 202 "" "$(signed "$dir/key.pem" k1 "[\"x\",\"$aud\"]" "{\"aud\":[\"x\",\"$aud\"]}")"
expect 400 invalid_audience "$(signed "$dir/key.pem" k1 https://other.example.com)"
expect 400 invalid_issuer "$(signed "$dir/key.pem" k1 "$aud" '{"iss":"https://evil.example.com"}')"
expect 400 invalid_request "$(signed "$dir/key.pem" k1 "$aud" '{"exp":9999999999}')"
expect 400 invalid_request "$(signed "$dir/key.pem" k1 "$aud" '{"sub_id":{"format":"email","email":"a@example.com"}}')"
expect 400 invalid_key "$(signed "$dir/other.pem" k1 "$aud")"   # wrong key, same kid
expect 400 invalid_key "$(signed "$dir/key.pem" nokid "$aud")"  # kid not in JWKS (refetched once)
expect 400 invalid_request "$good" text/plain
# The set subcommand: device-compliance-change (not accepted by this receiver:
# it takes session-revoked and verification) and its attacks.
dcc=$($peer set --key "$dir/key.pem" --kid k1 --iss "$iss" --aud "$aud" --jti d1 --user a@example.com \
  --device dev-1 --status not-compliant)
[ "$(printf '%s\n' "$dcc" | wc -l)" = 1 ] || fail "set printed more than one line"
expect 400 invalid_request "$dcc"
expect 400 invalid_key "$($peer set --key "$dir/key.pem" --kid k1 --iss "$iss" --aud "$aud" --jti d2 \
  --user a@example.com --device dev-1 --status compliant --alg none)"
expect 400 invalid_key "$($peer set --key "$dir/key.pem" --kid k1 --iss "$iss" --aud "$aud" --jti d3 \
  --user a@example.com --device dev-1 --status compliant --alg HS256)"
# An SSF verification event.
ver=$($py - "$dir/key.pem" <<'EOF'
import sys, time, jwt
print(jwt.encode({"iss": "https://srs.example.com", "aud": "https://rp.example.com", "iat": int(time.time()),
  "jti": "v1", "sub_id": {"format": "opaque", "id": "stream-1"},
  "events": {"https://schemas.openid.net/secevent/ssf/event-type/verification": {"state": "s1"}}},
  open(sys.argv[1], "rb").read(), algorithm="RS256", headers={"typ": "secevent+jwt", "kid": "k1"}))
EOF
)
expect 202 "" "$ver"

# set's own output, verified independently of the receiver.
$py - "$dir/key.pem" "$dir/jwks.json" <<EOF
import json, sys, subprocess, jwt
jwks = json.load(open(sys.argv[2]))
def mk(*extra):
    return subprocess.check_output(["$py", "$here/ssf_peer.py", "set", "--key", sys.argv[1], "--kid", "k1",
        "--iss", "$iss", "--aud", "$aud", "--jti", "j", "--user", "u@example.com", "--device", "d",
        "--status", "not-compliant", *extra], text=True).strip()
t = mk("--iat-offset", "-60")
h = jwt.get_unverified_header(t)
assert h == {"alg": "RS256", "kid": "k1", "typ": "secevent+jwt"}, h
c = jwt.decode(t, jwt.PyJWK(jwks["keys"][0]).key, algorithms=["RS256"], audience="$aud", issuer="$iss")
ev = c["events"]["https://schemas.openid.net/secevent/caep/event-type/device-compliance-change"]
assert ev["previous_status"] == "compliant" and ev["current_status"] == "not-compliant", ev
assert ev["event_timestamp"] == c["iat"] and ev["initiating_entity"] == "policy" and ev["reason_admin"]["en"]
assert c["sub_id"] == {"format": "complex", "user": {"format": "email", "email": "u@example.com"},
                       "device": {"format": "opaque", "id": "d"}}, c["sub_id"]
assert "typ" not in jwt.get_unverified_header(mk("--no-typ"))
assert jwt.get_unverified_header(mk("--typ", "JWT"))["typ"] == "JWT"
assert jwt.decode(mk("--subject-format", "email"), options={"verify_signature": False})["sub_id"] == \
    {"format": "email", "email": "u@example.com"}
n = mk("--alg", "none"); assert n.endswith(".") and jwt.get_unverified_header(n)["alg"] == "none"
print("ok set output")
EOF

# /received: one entry per push, in order.
curl -s "$base/received" >"$dir/received.json"
$py - "$dir/received.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
statuses = [e["status"] for e in r]
assert statuses == [503, 400, 202, 202, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 202], statuses
assert r[0]["problems"] == ["scripted answer 503"] and r[0]["claims"]["txn"] == "event-1"
assert r[2]["problems"] == [] and r[2]["header"]["typ"] == "secevent+jwt"
assert r[12]["header"]["alg"] == "none" and r[12]["claims"]["jti"] == "d2"
for e in r:
    assert set(e) >= {"status", "header", "claims", "problems"}, e
print("ok received", len(r))
EOF

# A clean SIGTERM: exits 0, leaves nothing listening.
kill -TERM "$rpid"
rc=0; wait "$rpid" || rc=$?
[ "$rc" = 0 ] || fail "receiver exited $rc on SIGTERM"
curl -s -o /dev/null "$base/healthz" && fail "receiver still answering"
echo "selftest: all ok"
