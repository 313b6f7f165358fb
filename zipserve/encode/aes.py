"""WinZip AES-256 (AE-2) encryption of one ZIP entry, fed chunk by chunk.

The format (WinZip, "AES Encryption Information: Encryption Format"): an
encrypted entry's data is a 16-byte salt, a 2-byte password verifier, the
ciphertext (as long as the stored or deflated data) and a 10-byte
authentication code, so ``encrypted_size(n) = n + 28``. PBKDF2-HMAC-SHA1 with
1000 iterations turns the password and salt into 66 bytes: the AES-256 key,
the HMAC-SHA1 key and the verifier. AES runs in CTR mode with a 128-bit
little-endian counter starting at 1, and the authentication code is the first
10 bytes of HMAC-SHA1 over the ciphertext. The entry's method is 99, its
0x9901 extra field holds the real one (``zipextra.aes_extra``), and under AE-2
its CRC field is 0: the code authenticates the data instead.

The counter is little-endian, and ``cryptography``'s CTR mode counts
big-endian, so the keystream is AES-ECB over the counter blocks of a whole
chunk in one call; the blocks are cut from a precomputed run of 65,536
counters with the higher counter bytes filled by a few strided slice
assignments, and the XOR is one numpy operation over the chunk: no Python
loop per block. (Two big integers XORed did the same at an eighth of the
speed: converting 256 KiB to and from an int costs more than AES itself;
bench/bench_aes.py measures it.)

Why a derived salt keeps CTR safe: sized archives must be the same bytes on
every request and every server, so the salt cannot be random.
``derive_salt`` makes it HMAC-SHA256, keyed by the server's secret, over the
password and the entry's identity (its name and content version: the CRC
cache's file key, which changes on any write). The salt decides the key, so:

- a different password or a different version of the entry gives a different
  salt, hence an unrelated key and keystream (a collision needs two 128-bit
  HMAC outputs to meet);
- the same password and version give the same key, and the same key only
  ever encrypts the same plaintext, so the ciphertext is the same bytes again
  and tells nothing new; a salt never repeats across passwords, so no
  precomputed table pays off across links.

This rests on the identity changing whenever the plaintext does, as resumes
already do. A deflated entry's plaintext is the compressor's output, which
depends on the library, level and chunking: unless the identity names all of
these, give deflated entries ``random_salt()`` (they are streamed, unsized,
so nothing needs their bytes to repeat).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import sys
from array import array
from typing import NamedTuple

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SALT_SIZE = 16  # AES-256 (strength 3)
VERIFIER_SIZE = 2
MAC_SIZE = 10
OVERHEAD = SALT_SIZE + VERIFIER_SIZE + MAC_SIZE
ITERATIONS = 1000
KEY_SIZE = 32
BLOCK = 16
_RUN = 1 << 16  # counter blocks whose counters differ only in their two low bytes
PIECE = 256 * 1024  # bytes encrypted at once: the temporaries stay in the CPU cache


class Keys(NamedTuple):
    """What PBKDF2 derives from a password and salt: AES key, HMAC key, password verifier."""

    aes: bytes
    mac: bytes
    verifier: bytes


def encrypted_size(size: int) -> int:
    """Given an entry's stored or compressed size, return its size encrypted (salt, verifier, data, code)."""
    return size + OVERHEAD


def derive_salt(secret: bytes, password: bytes, identity: str) -> bytes:
    """Given the server secret, a password and an entry's identity (name and version), return its salt.

    Each part is length-prefixed, so no two (password, identity) pairs feed
    the HMAC the same bytes.
    """
    ident = identity.encode("utf-8", "surrogatepass")
    message = b"zipserve aes salt\0" + len(password).to_bytes(4, "big") + password + ident
    return hmac.digest(secret, message, "sha256")[:SALT_SIZE]


def random_salt() -> bytes:
    """Return a fresh random salt, for entries whose plaintext the identity does not pin."""
    return os.urandom(SALT_SIZE)


def derive_keys(password: bytes, salt: bytes) -> Keys:
    """Given a password and 16-byte salt, return the AES-256 key, HMAC key and verifier; raise ValueError."""
    if len(salt) != SALT_SIZE:
        raise ValueError(f"AES-256 salt is {SALT_SIZE} bytes, not {len(salt)}")
    material = hashlib.pbkdf2_hmac("sha1", password, salt, ITERATIONS, 2 * KEY_SIZE + VERIFIER_SIZE)
    return Keys(material[:KEY_SIZE], material[KEY_SIZE:2 * KEY_SIZE], material[2 * KEY_SIZE:])


@functools.cache
def _counters() -> bytes:
    """Return counters 0..65535 as 16-byte little-endian blocks (1 MiB, built once)."""
    blocks = array("Q", bytes(_RUN * BLOCK))
    memoryview(blocks)[::2] = array("Q", range(_RUN))  # low 8 bytes of each block; high 8 stay 0
    if sys.byteorder == "big":
        blocks.byteswap()
    return blocks.tobytes()


def counter_blocks(first: int, count: int) -> bytearray:
    """Given a first counter and a count, return the little-endian counter blocks first..first+count-1."""
    out = bytearray()
    while count > 0:
        low, high = first % _RUN, first // _RUN
        take = min(count, _RUN - low)  # up to the next carry out of the two low bytes
        run = bytearray(_counters()[BLOCK * low: BLOCK * (low + take)])
        for i, byte in enumerate(high.to_bytes(BLOCK - 2, "little")):
            if byte:
                run[2 + i:: BLOCK] = bytes((byte,)) * take  # the same higher byte in every block
        out += run
        first, count = first + take, count - take
    return out


class Ctr:
    """AES-256 in WinZip's CTR mode (little-endian counter from 1) from an offset into an entry's data."""

    def __init__(self, key: bytes, offset: int = 0) -> None:
        self._ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        self._at = offset

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Given the next chunk of the entry's (stored or deflated) data, return its ciphertext."""
        if len(data) <= PIECE:
            return self._piece(data)
        view = memoryview(data)  # pieces whose temporaries stay in the CPU cache: faster than 1 MiB at once
        return b"".join([self._piece(view[i: i + PIECE]) for i in range(0, len(data), PIECE)])

    def _piece(self, data: bytes | bytearray | memoryview) -> bytes:
        """Given up to PIECE bytes of data, return their ciphertext (one ECB call, one numpy XOR)."""
        size = len(data)
        if not size:
            return b""
        skip = self._at % BLOCK
        blocks = counter_blocks(self._at // BLOCK + 1, (skip + size + BLOCK - 1) // BLOCK)
        stream = np.frombuffer(self._ecb.update(blocks), np.uint8, size, skip)
        self._at += size
        return (np.frombuffer(data, np.uint8) ^ stream).tobytes()


def ctr(keys: Keys, offset: int, data: bytes | bytearray | memoryview) -> bytes:
    """Given an entry's keys, an offset into its data and the data there, return its ciphertext.

    Stateless, so the chunks of one entry can be encrypted on several workers
    at once; the authentication code is the caller's (see new_mac).
    """
    return Ctr(keys.aes, offset).update(data)


def new_mac(keys: Keys) -> hmac.HMAC:
    """Given an entry's keys, return the HMAC-SHA1 its ciphertext is fed to in order (code: 10 bytes)."""
    return hmac.new(keys.mac, digestmod=hashlib.sha1)


class AesEncryptor:
    """One entry's AES-256 CTR encryption and HMAC-SHA1, fed its data in order, chunk by chunk.

    ``prefix`` (salt and verifier) goes before the ciphertext, ``finish()``
    after it. ``offset`` starts the keystream that many bytes into the data,
    for a range that begins inside the entry; such an encryptor has no
    authentication code (it saw no ciphertext before ``offset``). ``keys``
    spares the key derivation when the caller has them already.
    """

    def __init__(self, password: bytes, salt: bytes, *, offset: int = 0,
                 keys: Keys | None = None) -> None:
        keys = keys if keys is not None else derive_keys(password, salt)
        self.prefix = salt + keys.verifier
        self._ctr = Ctr(keys.aes, offset)
        self._mac = new_mac(keys) if offset == 0 else None

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Given the next chunk of the entry's (stored or deflated) data, return its ciphertext."""
        out = self._ctr.update(data)
        if self._mac is not None:
            self._mac.update(out)
        return out

    def finish(self) -> bytes:
        """Return the 10-byte authentication code that ends the entry; raise ValueError if started inside."""
        if self._mac is None:
            raise ValueError("an encryptor started inside the entry has no authentication code")
        return self._mac.digest()[:MAC_SIZE]


def encrypt(password: bytes, salt: bytes, data: bytes) -> bytes:
    """Given a password, salt and an entry's whole data, return it encrypted (prefix, ciphertext, code)."""
    enc = AesEncryptor(password, salt)
    return enc.prefix + enc.update(data) + enc.finish()
