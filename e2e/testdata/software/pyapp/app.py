"""The program of TestPython: Python's standard library at work in a nos
image. With an argument, it fails with that exit code."""

import errno
import hashlib
import json
import os
import sqlite3
import ssl
import sys

data = {"primes": [n for n in range(2, 50) if all(n % d for d in range(2, n))]}
blob = json.dumps(data, sort_keys=True)
print(blob)
print("sha256", hashlib.sha256(blob.encode()).hexdigest())
print("uid", os.getuid(), "gid", os.getgid())
# Extension modules loaded with dlopen, with libraries python3 itself does
# not link (libssl, libcrypto, libsqlite3).
print("ssl", ssl.OPENSSL_VERSION.split()[0], "sqlite", sqlite3.connect(":memory:").execute("select 1+1").fetchone()[0])

# The program's files are on the root disk (writable for root, or read-only
# with --read-only); /tmp is writable.
try:
    with open(os.path.join(os.path.dirname(__file__), "new"), "w"):
        pass
    print("app dir: writable")
except OSError as e:
    print("app dir:", errno.errorcode[e.errno])
with open("/tmp/new", "w") as f:
    f.write("x")
print("tmp: writable")

if len(sys.argv) > 1:
    print("exiting with", sys.argv[1], file=sys.stderr)
    sys.exit(int(sys.argv[1]))
