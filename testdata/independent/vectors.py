#!/usr/bin/env python3
"""An independent check of the record format (docs/FORMAT.md).

Written from the specification alone, with Debian's python3-cbor2 for
decoding, python3-nacl (libsodium) for ed25519 and hashlib for SHA-256; it
shares no code with the Go implementation. Commands:

  golden DIR    check DIR/records.json, DIR/invalid-records.json and
                DIR/tlog.json: canonical encoding, signing bytes, signatures,
                IDs and peer IDs, the refusal of every invalid record, and
                the Merkle tree hashes and proofs (RFC 9162 section 2.1).
  build         print (JSON) records built here from scratch, for the Go
                implementation to accept or refuse.
  rfc9162       print (JSON) the example tree of RFC 9162 section 2.1.5 over
                seven known leaves: its named nodes, roots and the audit
                paths and consistency proofs the RFC lists.

Exit status 0 means every check passed; failures are printed one a line.
"""

import base64
import hashlib
import io
import json
import os
import re
import sys

import cbor2
import nacl.exceptions
import nacl.signing

SIGNING_HEADER = b"wcr-record-v1\n"
AUTHOR_PREFIX = bytes.fromhex("08011220")
KIND_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL:", msg)


# --- RFC 8949 section 4.2.1 core deterministic encoding, written here ---

def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | ai]) + n.to_bytes(size, "big")
    raise ValueError("integer too large for CBOR: %d" % n)


def encode(v):
    """Canonical CBOR of v; ValueError for anything the format forbids."""
    if v is False:
        return b"\xf4"
    if v is True:
        return b"\xf5"
    if v is None:
        return b"\xf6"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode("utf-8")
        return head(3, len(b)) + b
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(encode(x) for x in v)
    if isinstance(v, dict):
        items = sorted((encode(k), encode(x)) for k, x in v.items())
        for a, b in zip(items, items[1:]):
            if a[0] == b[0]:
                raise ValueError("duplicate map key")
        return head(5, len(v)) + b"".join(k + x for k, x in items)
    raise ValueError("%s is not allowed in signed data" % type(v).__name__)


def decode(b):
    """Decodes exactly one CBOR item filling b, or raises ValueError."""
    fp = io.BytesIO(b)
    try:
        v = cbor2.CBORDecoder(fp).decode()
    except Exception as e:  # cbor2 raises its own decode errors
        raise ValueError("cbor2 cannot decode it: %s" % e)
    if fp.tell() != len(b):
        raise ValueError("%d trailing bytes" % (len(b) - fp.tell()))
    return v


def canonical(b):
    """Decodes b and checks it is exactly its canonical encoding."""
    v = decode(b)
    again = encode(v)
    if again != b:
        at = next((i for i, (x, y) in enumerate(zip(again, b)) if x != y), min(len(again), len(b)))
        raise ValueError("not canonical: its canonical encoding (%d bytes) differs at byte %d" % (len(again), at))
    return v


# --- IDs ---

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(b):
    n = int.from_bytes(b, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(b) - len(b.lstrip(b"\0"))) + out


def multihash(b):
    return bytes([0x12, 0x20]) + hashlib.sha256(b).digest()


def id_base32(mh):
    return "b" + base64.b32encode(mh).decode().lower().rstrip("=")


def peer_id(author):
    return base58(bytes([0x00, len(author)]) + author)


# --- records ---

def signing_bytes(env):
    return SIGNING_HEADER + encode({k: env[k] for k in (1, 2, 3, 4, 5)})


def check_record(b):
    """Returns the envelope of a valid record, or raises ValueError."""
    env = canonical(b)
    if not isinstance(env, dict) or sorted(env) != [1, 2, 3, 4, 5, 6]:
        raise ValueError("the envelope is not a map of keys 1-6")
    kind, subject, _, author, t, sig = (env[k] for k in (1, 2, 3, 4, 5, 6))
    if not isinstance(kind, str) or not KIND_RE.match(kind):
        raise ValueError("bad kind %r" % (kind,))
    if not isinstance(subject, str) or not 1 <= len(subject.encode()) <= 256 or \
            any(ord(c) < 0x20 or ord(c) == 0x7f for c in subject):
        raise ValueError("bad subject %r" % (subject,))
    if not isinstance(author, bytes) or len(author) != 36 or not author.startswith(AUTHOR_PREFIX):
        raise ValueError("bad author")
    if not isinstance(t, int) or isinstance(t, bool) or t < 0:
        raise ValueError("bad time")
    if not isinstance(sig, bytes) or len(sig) != 64:
        raise ValueError("bad signature length")
    try:
        nacl.signing.VerifyKey(author[4:]).verify(signing_bytes(env), sig)
    except nacl.exceptions.BadSignatureError:
        raise ValueError("bad signature")
    return env


def check_golden_records(path):
    vectors = json.load(open(path))
    names = set()
    for v in vectors:
        name = v["name"]
        names.add(name)
        rec = bytes.fromhex(v["record_hex"])
        try:
            env = check_record(rec)
        except ValueError as e:
            fail("%s: the golden record is refused: %s" % (name, e))
            continue
        again = cbor2.dumps(cbor2.loads(rec), canonical=True)
        if again != rec:
            fail("%s: cbor2's own canonical encoding differs: %s" % (name, again.hex()))
        sk = nacl.signing.SigningKey(bytes.fromhex(v["key_seed_hex"]))
        author = AUTHOR_PREFIX + bytes(sk.verify_key)
        checks = {
            "author_hex": author.hex(),
            "author_peer_id": peer_id(author),
            "kind": env[1],
            "subject": env[2],
            "time": env[5],
            "body_hex": encode(env[3]).hex(),
            "signing_bytes_hex": signing_bytes(env).hex(),
            "sig_hex": sk.sign(signing_bytes(env)).signature.hex(),
            "id_base32": id_base32(multihash(rec)),
            "id_base58": "z" + base58(multihash(rec)),
        }
        if env[4] != author:
            fail("%s: the author is not the seed's key" % name)
        for field, want in checks.items():
            if v.get(field) != want:
                fail("%s: %s is %r, recomputed %r" % (name, field, v.get(field), want))
        print("ok record %s %s" % (name, checks["id_base32"]))
    for want in ("release", "yank", "review", "owners", "key", "report"):
        if want not in names:
            fail("records.json has no %s record" % want)


def check_invalid_records(path):
    invalid = json.load(open(path))
    if len(invalid) < 10:
        fail("invalid-records.json holds only %d records" % len(invalid))
    for name, h in sorted(invalid.items()):
        try:
            check_record(bytes.fromhex(h))
        except ValueError as e:
            print("ok refused %s: %s" % (name, e))
            continue
        fail("%s: an invalid record is accepted by the independent check" % name)


# --- Merkle tree (RFC 9162 section 2.1) ---

def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves):
    """MTH(D[n]) of RFC 9162 section 2.1.1."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m, leaves):
    """PATH(m, D[n]) of RFC 9162 section 2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def subproof(m, leaves, b):
    """SUBPROOF(m, D[n], b) of RFC 9162 section 2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return subproof(m, leaves[:k], b) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def check_tlog(path_):
    g = json.load(open(path_))
    leaves = [bytes.fromhex(h) for h in g["leaves_multihash_hex"]]
    for i, l in enumerate(leaves):
        if l != multihash(b"golden leaf %d" % i):
            fail("tlog leaf %d is not the ID of 'golden leaf %d'" % (i, i))
        if g["leaf_hashes_hex"][i] != leaf_hash(l).hex():
            fail("tlog leaf hash %d differs" % i)
    for n, root in enumerate(g["roots_hex"]):
        if root != mth(leaves[:n]).hex():
            fail("tlog root of %d leaves is %s, recomputed %s" % (n, root, mth(leaves[:n]).hex()))
    inc = g["inclusion"]
    want = [h.hex() for h in path(inc["index"], leaves[:inc["size"]])]
    if inc["proof_hex"] != want:
        fail("tlog inclusion proof differs: %s, recomputed %s" % (inc["proof_hex"], want))
    con = g["consistency"]
    want = [h.hex() for h in subproof(con["first"], leaves[:con["second"]], True)]
    if con["proof_hex"] != want:
        fail("tlog consistency proof differs: %s, recomputed %s" % (con["proof_hex"], want))

    cp = g["checkpoint"]
    rec = bytes.fromhex(cp["record_hex"])
    try:
        env = check_record(rec)
    except ValueError as e:
        fail("the checkpoint record is refused: %s" % e)
        return
    body = env[3]
    if encode(body).hex() != cp["body_hex"]:
        fail("the checkpoint body differs from body_hex")
    if env[1] != "checkpoint" or env[2] != peer_id(env[4]):
        fail("the checkpoint's kind or subject (its author's peer ID) is wrong")
    size, root = body[1], body[2]
    if root != mth(leaves[:size]) or body.get(3, 0) != 0 or body[4] != leaves[:size]:
        fail("the checkpoint's size, root, prev or leaves do not match the log")
    note = "wcr/%s\n%d\n%s\n" % (env[2], size, base64.b64encode(root).decode())
    if body.get(5) != note or cp["note"] != note:
        fail("the checkpoint note is %r, want %r" % (body.get(5), note))
    if cp["id_base32"] != id_base32(multihash(rec)):
        fail("the checkpoint ID differs")
    print("ok tlog: %d leaves, %d roots, proofs and checkpoint" % (len(leaves), len(g["roots_hex"])))


# --- records built from scratch ---

def build():
    sk = nacl.signing.SigningKey(bytes([0x42]) * 32)
    author = AUTHOR_PREFIX + bytes(sk.verify_key)
    env = {1: "yank", 2: "python-built@0.1.0", 3: {1: True, 2: "built from the specification"},
           4: author, 5: 1767225600123}
    sig = sk.sign(signing_bytes(env)).signature
    env[6] = sig
    rec = encode(env)
    out = {
        "valid": {"record_hex": rec.hex(), "id_base32": id_base32(multihash(rec)),
                  "id_base58": "z" + base58(multihash(rec)), "author_peer_id": peer_id(author)},
        "invalid": {},
    }
    # The same record with its envelope keys out of order: not canonical.
    items = [(k, env[k]) for k in (2, 1, 3, 4, 5, 6)]
    out["invalid"]["key-order"] = (head(5, 6) + b"".join(encode(k) + encode(v) for k, v in items)).hex()
    # Signed over the map including key 6's absence but with a wrong header.
    bad = dict(env)
    bad[6] = sk.sign(b"wcr-record-v0\n" + encode({k: env[k] for k in (1, 2, 3, 4, 5)})).signature
    out["invalid"]["other-signing-header"] = encode(bad).hex()
    # Envelope key 1 in two bytes (18 01) instead of one: not shortest form.
    long_key = b"".join((b"\x18\x01" if k == 1 else encode(k)) + encode(env[k]) for k in sorted(env))
    out["invalid"]["long-key"] = (head(5, 6) + long_key).hex()
    # A tagged time (tag 1, epoch date-time).
    tagged = b"".join(encode(k) + (b"\xc1" + encode(env[5]) if k == 5 else encode(env[k])) for k in sorted(env))
    out["invalid"]["tagged-time"] = (head(5, 6) + tagged).hex()
    json.dump(out, sys.stdout, indent=1)


# --- RFC 9162 section 2.1.5 ---

def rfc9162():
    d = [multihash(b"d%d" % i) for i in range(7)]
    a, b, c, dd, e, f = (leaf_hash(x) for x in d[:6])
    d6 = leaf_hash(d[6])
    g, h, i, j = node_hash(a, b), node_hash(c, dd), node_hash(e, f), d6
    k, l = node_hash(g, h), node_hash(i, j)
    root = node_hash(k, l)
    hash0 = node_hash(g, c)
    hash2 = node_hash(k, i)
    x = lambda hs: [y.hex() for y in hs]
    out = {
        "leaves_multihash_hex": x(d),
        "roots_hex": {"3": hash0.hex(), "4": k.hex(), "6": hash2.hex(), "7": root.hex()},
        # "The audit path for d0 is [b, h, l]." and so on.
        "inclusion": {"0": x([b, h, l]), "3": x([c, g, l]), "4": x([f, j, k]), "6": x([i, k])},
        # PROOF(3, D[7]) = [c, d, g, l]; PROOF(4, D[7]) = [l]; PROOF(6, D[7]) = [i, j, k].
        "consistency": {"3": x([c, dd, g, l]), "4": x([l]), "6": x([i, j, k])},
    }
    # The RFC's recursive definitions must give the same as its pictures.
    for m, want in out["inclusion"].items():
        if x(path(int(m), d)) != want:
            fail("PATH(%s, D[7]) is not the RFC's audit path" % m)
    for m, want in out["consistency"].items():
        if x(subproof(int(m), d, True)) != want:
            fail("PROOF(%s, D[7]) is not the RFC's consistency proof" % m)
    for m, want in out["roots_hex"].items():
        if mth(d[:int(m)]).hex() != want:
            fail("MTH(D[%s]) is not the RFC's tree" % m)
    json.dump(out, sys.stdout, indent=1)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd = sys.argv[1]
    if cmd == "golden" and len(sys.argv) == 3:
        d = sys.argv[2]
        check_golden_records(os.path.join(d, "records.json"))
        check_invalid_records(os.path.join(d, "invalid-records.json"))
        check_tlog(os.path.join(d, "tlog.json"))
    elif cmd == "build":
        build()
    elif cmd == "rfc9162":
        rfc9162()
    else:
        sys.exit(__doc__)
    if FAILURES:
        sys.exit(1)


if __name__ == "__main__":
    main()
