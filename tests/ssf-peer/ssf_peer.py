#!/usr/bin/python3
"""ssf-peer: the other side of `srs serve`'s Shared Signals (SSF 1.0, CAEP 1.0).

An independent implementation built on a second JOSE library (PyJWT with
python-cryptography, from Debian: python3-jwt, python3-cryptography), so that
the Rust tests do not check our SETs with the code that made them.

Subcommands (see README.md beside this file):

  receiver --jwks-url URL --issuer ISS --audience AUD [--respond CODES]
      An RFC 8935 push receiver on 127.0.0.1 (port 0). First stdout line:
      "ssf-peer: listening on http://127.0.0.1:PORT". POST /push (any path),
      GET /received, GET /healthz. Serves until SIGTERM or SIGINT (exit 0).
  keygen --key OUT.pem --jwks OUT.json --kid KID [--bits 2048]
      An RSA key: private PKCS#8 PEM (unencrypted), public JWKS.
  set --key PEM --kid KID --iss ISS --aud AUD --jti JTI --user EMAIL
      --device DEVICE --status not-compliant|compliant [...]
      Prints one compact CAEP device-compliance-change SET on one line.
"""

import argparse
import base64
import hashlib
import hmac
import json
import signal
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt  # PyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
DEVICE_COMPLIANCE_CHANGE = (
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change"
)
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
SET_MEDIA_TYPE = "application/secevent+jwt"

# RFC 8935 err codes, most serious first: the answer carries the first one met.
ERR_PRIORITY = ["invalid_key", "invalid_issuer", "invalid_audience", "invalid_request"]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    if isinstance(text, bytes):
        text = text.decode("ascii")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_nonempty_str(value):
    return isinstance(value, str) and value != ""


def unverified_parts(token):
    """The JOSE header and claims of a compact JWS, without verifying anything.
    Each is None when it cannot be decoded as a JSON object."""
    parts = token.split(".")
    out = []
    for segment in parts[:2]:
        try:
            value = json.loads(b64url_decode(segment))
        except Exception:
            value = None
        out.append(value if isinstance(value, dict) else None)
    while len(out) < 2:
        out.append(None)
    return out[0], out[1]


# --------------------------------------------------------------------------
# receiver


class Jwks:
    """The transmitter's JWKS, fetched from a URL, cached, refetched once when a
    SET names a kid the cache does not have."""

    def __init__(self, url):
        self.url = url
        self.lock = threading.Lock()
        self.keys = None  # kid -> JWK dict
        # No proxies: the JWKS is on 127.0.0.1 in the tests.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _fetch(self):
        with self.opener.open(self.url, timeout=10) as response:
            document = json.loads(response.read())
        keys = {}
        for jwk in document.get("keys", []):
            if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str):
                keys[jwk["kid"]] = jwk
        self.keys = keys

    def lookup(self, kid):
        """(jwk or None, problem or None)."""
        with self.lock:
            try:
                if self.keys is None:
                    self._fetch()
                if kid not in self.keys:
                    self._fetch()
            except Exception as error:  # noqa: BLE001 - reported, not raised
                return None, "jwks fetch from %s failed: %s" % (self.url, error)
            return self.keys.get(kid), None


class Verifier:
    def __init__(self, jwks, issuer, audience):
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience

    def verify(self, token):
        """A list of (err code, problem text); empty when the SET is good."""
        problems = []

        def bad(code, text):
            problems.append((code, text))

        header, claims = unverified_parts(token)
        if token.count(".") != 2:
            bad("invalid_request", "not a compact JWS (three dot-separated parts)")
            return problems
        if header is None:
            bad("invalid_request", "JOSE header is not a base64url JSON object")
            return problems

        # -- JOSE header
        if header.get("typ") != "secevent+jwt":
            bad("invalid_request", "header typ is %r, not 'secevent+jwt'" % header.get("typ"))
        alg = header.get("alg")
        if alg != "RS256":
            bad("invalid_key", "header alg is %r, not 'RS256'" % alg)
        kid = header.get("kid")
        if not is_nonempty_str(kid):
            bad("invalid_key", "header kid is missing or not a string")

        # -- key and signature (PyJWT + cryptography)
        if alg == "RS256" and is_nonempty_str(kid):
            jwk, problem = self.jwks.lookup(kid)
            if problem:
                bad("invalid_key", problem)
            elif jwk is None:
                bad("invalid_key", "kid %r is not in the JWKS" % kid)
            else:
                key = None
                if jwk.get("kty") != "RSA":
                    bad("invalid_key", "JWK %r has kty %r, not 'RSA'" % (kid, jwk.get("kty")))
                elif jwk.get("alg", "RS256") != "RS256":
                    bad("invalid_key", "JWK %r has alg %r, not 'RS256'" % (kid, jwk.get("alg")))
                elif jwk.get("use", "sig") != "sig":
                    bad("invalid_key", "JWK %r has use %r, not 'sig'" % (kid, jwk.get("use")))
                else:
                    try:
                        key = jwt.PyJWK(jwk, algorithm="RS256").key
                    except Exception as error:  # noqa: BLE001
                        bad("invalid_key", "JWK %r is not a usable RSA key: %s" % (kid, error))
                if key is not None:
                    if key.key_size < 2048:
                        bad("invalid_key", "RSA key %r has %d bits, fewer than 2048" % (kid, key.key_size))
                    else:
                        try:
                            jwt.PyJWS().decode_complete(token, key=key, algorithms=["RS256"])
                        except jwt.InvalidSignatureError:
                            bad("invalid_key", "RS256 signature does not verify with key %r" % kid)
                        except jwt.PyJWTError as error:
                            bad("invalid_request", "JWS rejected by PyJWT: %s" % error)

        # -- claims
        if claims is None:
            bad("invalid_request", "payload is not a base64url JSON object")
            return problems
        if claims.get("iss") != self.issuer:
            bad("invalid_issuer", "iss is %r, not %r" % (claims.get("iss"), self.issuer))
        aud = claims.get("aud")
        if isinstance(aud, str):
            aud_ok = aud == self.audience
        elif isinstance(aud, list):
            aud_ok = self.audience in aud and all(isinstance(a, str) for a in aud)
        else:
            aud_ok = False
        if not aud_ok:
            bad("invalid_audience", "aud is %r, does not name %r" % (aud, self.audience))
        if not is_number(claims.get("iat")):
            bad("invalid_request", "iat is missing or not a number")
        if not is_nonempty_str(claims.get("jti")):
            bad("invalid_request", "jti is missing or not a string")
        if "exp" in claims:
            bad("invalid_request", "exp is present (SSF: MUST NOT be used)")
        if "sub" in claims:
            bad("invalid_request", "sub is present (SSF: MUST NOT be present)")

        events = claims.get("events")
        if not isinstance(events, dict) or len(events) != 1:
            bad("invalid_request", "events is not an object with exactly one member")
            return problems
        (event_type, event), = events.items()
        if not isinstance(event, dict):
            bad("invalid_request", "the event %s is not an object" % event_type)
            return problems
        sub_id = claims.get("sub_id")

        if event_type == SESSION_REVOKED:
            if not is_nonempty_str(claims.get("txn")):
                bad("invalid_request", "txn is missing or not a string")
            self._check_complex_subject(sub_id, bad)
            if not is_number(event.get("event_timestamp")):
                bad("invalid_request", "event_timestamp is missing or not a number")
            if event.get("initiating_entity") != "policy":
                bad(
                    "invalid_request",
                    "initiating_entity is %r, not 'policy'" % event.get("initiating_entity"),
                )
            reason = event.get("reason_admin")
            if not (
                isinstance(reason, dict)
                and reason
                and all(is_nonempty_str(k) and is_nonempty_str(v) for k, v in reason.items())
            ):
                bad(
                    "invalid_request",
                    "reason_admin is %r, not an object of language -> non-empty string" % (reason,),
                )
        elif event_type == VERIFICATION:
            if not (
                isinstance(sub_id, dict)
                and sub_id.get("format") == "opaque"
                and is_nonempty_str(sub_id.get("id"))
            ):
                bad("invalid_request", "verification sub_id is %r, not an opaque stream id" % (sub_id,))
            if "state" in event and not isinstance(event["state"], str):
                bad("invalid_request", "verification state is not a string")
        else:
            bad("invalid_request", "event type %s is not one this receiver accepts" % event_type)
        return problems

    @staticmethod
    def _check_complex_subject(sub_id, bad):
        def fail(why):
            bad("invalid_request", "sub_id %s: %r" % (why, sub_id))

        if not isinstance(sub_id, dict):
            return fail("is missing or not an object")
        if sub_id.get("format") != "complex":
            return fail("format is not 'complex'")
        if set(sub_id) != {"format", "user", "device"}:
            return fail("members are not exactly format, user, device")
        user, device = sub_id["user"], sub_id["device"]
        if not (
            isinstance(user, dict)
            and set(user) == {"format", "email"}
            and user["format"] == "email"
            and is_nonempty_str(user["email"])
        ):
            return fail("user is not {format: email, email: <non-empty>}")
        if not (
            isinstance(device, dict)
            and set(device) == {"format", "id"}
            and device["format"] == "opaque"
            and is_nonempty_str(device["id"])
        ):
            return fail("device is not {format: opaque, id: <non-empty>}")
        return None


def parse_script(text):
    """'503,400:invalid_audience,202' -> [(503, None), (400, 'invalid_audience'), (202, None)]"""
    script = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        code, _, err = item.partition(":")
        status = int(code)
        if not 100 <= status <= 599:
            raise ValueError("not an HTTP status: %s" % item)
        script.append((status, err or None))
    return script


class ReceiverState:
    def __init__(self, verifier, script):
        self.verifier = verifier
        self.script = list(script)
        self.lock = threading.Lock()
        self.received = []

    def next_scripted(self):
        with self.lock:
            return self.script.pop(0) if self.script else None

    def record(self, entry):
        with self.lock:
            self.received.append(entry)

    def snapshot(self):
        with self.lock:
            return json.dumps(self.received).encode("utf-8")


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ssf-peer"

        def log_message(self, fmt, *args):  # to stderr, one line per request
            sys.stderr.write("ssf-peer: %s %s\n" % (self.address_string(), fmt % args))

        def _send(self, status, body=b"", content_type=None):
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def _send_err(self, status, err, description):
            body = json.dumps({"err": err, "description": description}).encode("utf-8")
            self._send(status, body, "application/json")

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/received":
                self._send(200, state.snapshot(), "application/json")
            elif path == "/healthz":
                self._send(204)
            else:
                self._send(404)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            token = raw.decode("utf-8", errors="replace").strip()
            header, claims = unverified_parts(token)
            entry = {
                "status": None,
                "header": header,
                "claims": claims,
                "problems": [],
                "authorization": self.headers.get("Authorization"),
            }

            scripted = state.next_scripted()
            if scripted is not None:
                status, err = scripted
                entry["status"] = status
                entry["problems"] = ["scripted answer %d%s" % (status, ":" + err if err else "")]
                state.record(entry)
                if err or status == 400:
                    self._send_err(status, err or "invalid_request", "scripted answer")
                else:
                    self._send(status)
                return

            media = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if media != SET_MEDIA_TYPE:
                text = "Content-Type is %r, not %r" % (self.headers.get("Content-Type"), SET_MEDIA_TYPE)
                entry["status"] = 400
                entry["problems"] = [text]
                state.record(entry)
                self._send_err(400, "invalid_request", text)
                return

            problems = state.verifier.verify(token)
            if not problems:
                entry["status"] = 202
                state.record(entry)
                self._send(202)
                return
            codes = {code for code, _ in problems}
            err = next(code for code in ERR_PRIORITY if code in codes)
            texts = [text for _, text in problems]
            entry["status"] = 400
            entry["problems"] = texts
            state.record(entry)
            self._send_err(400, err, "; ".join(texts))

    return Handler


def cmd_receiver(args):
    try:
        script = parse_script(args.respond)
    except ValueError as error:
        sys.exit("ssf-peer: --respond: %s" % error)
    verifier = Verifier(Jwks(args.jwks_url), args.issuer, args.audience)
    state = ReceiverState(verifier, script)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    if args.audience == "self":
        # A receiver registered by stream: the transmitter names it by its origin.
        verifier.audience = "http://127.0.0.1:%d" % server.server_address[1]

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ssf-peer: listening on http://127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


# --------------------------------------------------------------------------
# keygen


def int_b64url(value):
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def cmd_keygen(args):
    key = rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    numbers = key.public_key().public_numbers()
    jwks = {
        "keys": [
            {
                "kty": "RSA",
                "kid": args.kid,
                "use": "sig",
                "alg": "RS256",
                "n": int_b64url(numbers.n),
                "e": int_b64url(numbers.e),
            }
        ]
    }
    with open(args.key, "wb") as out:
        out.write(pem)
    with open(args.jwks, "w") as out:
        json.dump(jwks, out, indent=2)
        out.write("\n")
    return 0


# --------------------------------------------------------------------------
# set


def cmd_set(args):
    with open(args.key, "rb") as source:
        pem = source.read()
    now = int(time.time()) + args.iat_offset
    previous = args.previous or ("compliant" if args.status == "not-compliant" else "not-compliant")
    if args.subject_format == "complex":
        sub_id = {
            "format": "complex",
            "user": {"format": "email", "email": args.user},
            "device": {"format": "opaque", "id": args.device},
        }
    else:
        sub_id = {"format": "email", "email": args.user}
    claims = {
        "iss": args.iss,
        "aud": args.aud[0] if len(args.aud) == 1 else args.aud,
        "iat": now,
        "jti": args.jti,
        "txn": args.txn or str(uuid.uuid4()),
        "sub_id": sub_id,
        "events": {
            args.event_type: {
                "previous_status": previous,
                "current_status": args.status,
                "event_timestamp": now,
                "initiating_entity": "policy",
                "reason_admin": {"en": "Device %s is %s" % (args.device, args.status)},
            }
        },
    }
    header = {"alg": args.alg, "kid": args.kid}
    if not args.no_typ:
        header["typ"] = args.typ

    if args.alg == "RS256":
        # PyJWT adds typ "JWT" unless the headers say otherwise; typ None drops it.
        headers = dict(header, typ=None) if args.no_typ else header
        token = jwt.encode(claims, pem, algorithm="RS256", headers=headers)
    else:
        # PyJWT refuses a PEM as an HMAC secret and 'none' needs care: by hand.
        token = hand_signed(header, claims, pem if args.alg == "HS256" else None)
    if isinstance(token, bytes):
        token = token.decode("ascii")
    sys.stdout.write(token + "\n")
    sys.stdout.flush()
    return 0


def hand_signed(header, claims, hmac_secret):
    signing_input = "%s.%s" % (
        b64url(json.dumps(header, separators=(",", ":")).encode("utf-8")),
        b64url(json.dumps(claims, separators=(",", ":")).encode("utf-8")),
    )
    if header["alg"] == "HS256":
        signature = b64url(hmac.new(hmac_secret, signing_input.encode("ascii"), hashlib.sha256).digest())
    else:
        signature = ""
    return signing_input + "." + signature


# --------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(prog="ssf_peer.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("receiver", help="RFC 8935 push receiver that verifies SETs")
    p.add_argument("--jwks-url", required=True, help="the transmitter's JWKS (http:// or file://)")
    p.add_argument("--issuer", required=True)
    p.add_argument("--audience", required=True, help="`self`: this receiver's own origin")
    p.add_argument(
        "--respond",
        default="",
        help="comma-separated answers for the first pushes, e.g. 503,503 or 400:invalid_audience",
    )
    p.set_defaults(func=cmd_receiver)

    p = sub.add_parser("keygen", help="RSA signing key (PKCS#8 PEM) and its public JWKS")
    p.add_argument("--key", required=True)
    p.add_argument("--jwks", required=True)
    p.add_argument("--kid", required=True)
    p.add_argument("--bits", type=int, default=2048)
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("set", help="print a CAEP device-compliance-change SET")
    p.add_argument("--key", required=True, help="PKCS#8 PEM private key")
    p.add_argument("--kid", required=True)
    p.add_argument("--iss", required=True)
    p.add_argument("--aud", required=True, action="append", help="repeat for an array")
    p.add_argument("--jti", required=True)
    p.add_argument("--txn", help="default: a random UUID")
    p.add_argument("--user", required=True, help="the user's email")
    p.add_argument("--device", required=True, help="the device id (opaque)")
    p.add_argument("--status", required=True, choices=["not-compliant", "compliant"])
    p.add_argument("--previous", choices=["compliant", "not-compliant"], help="default: the other one")
    p.add_argument("--iat-offset", type=int, default=0, help="seconds added to now for iat")
    p.add_argument("--alg", default="RS256", choices=["none", "HS256", "RS256"])
    p.add_argument("--typ", default="secevent+jwt")
    p.add_argument("--no-typ", action="store_true", help="leave typ out of the header")
    p.add_argument("--event-type", default=DEVICE_COMPLIANCE_CHANGE)
    p.add_argument("--subject-format", default="complex", choices=["complex", "email"])
    p.set_defaults(func=cmd_set)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
