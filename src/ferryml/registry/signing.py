"""Signed model packages: an ed25519 signature over a package's digest, kept with the
model version (a tag ``ferry.signature.<key id>``), and the check a loader runs, when
``ferry.yaml`` lists ``trust:`` keys, before any byte of the package is deserialized.

A package's digest names its metadata, which holds every file's digest, so one signature
over it covers the whole package. Keys are ed25519: ``ferry models keygen KEY`` writes a
private key (PEM, as ``openssl genpkey -algorithm ed25519 -out KEY`` also does) and
``KEY.pub``, the public key on one line (``ssh-ed25519 AAAA…``) to list under ``trust:``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ferryml.errors import IntegrityError, InvalidArgument

__all__ = [
    "SIGNATURE_TAG",
    "check_trusted",
    "generate_key",
    "key_id",
    "public_key_line",
    "read_private_key",
    "read_public_key",
    "sign_digest",
]

SIGNATURE_TAG = "ferry.signature."  # + the key id; the value is the signature in base64
_DOMAIN = b"ferryml model package v1\n"  # a signature of a package, never of other bytes


def generate_key(path: str | os.PathLike[str]) -> str:
    """Write a new private key to ``path`` (PEM, readable by its owner only) and its public
    key to ``path.pub``; returns the public key's line.

    Raises:
        InvalidArgument: ``path`` exists already.
    """
    target = Path(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise InvalidArgument(f"{target} exists already; choose another path.") from e
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    line = public_key_line(key.public_key())
    Path(f"{target}.pub").write_text(line + "\n", encoding="utf-8")
    return line


def public_key_line(key: Ed25519PublicKey) -> str:
    """The key as one line, ``ssh-ed25519 AAAA… ferryml``."""
    text = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{text.decode()} ferryml"


def key_id(key: Ed25519PublicKey) -> str:
    """16 hex characters naming the key (a digest of its raw bytes)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def read_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The ed25519 private key in ``path`` (PEM or OpenSSH, unencrypted).

    Raises:
        InvalidArgument: the file is missing, or holds no unencrypted ed25519 private key.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InvalidArgument(f"Cannot read the key {path}: {e.strerror}.") from e
    loaders = (serialization.load_pem_private_key, serialization.load_ssh_private_key)
    for load in loaders:
        try:
            key = load(data, None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        if isinstance(key, Ed25519PrivateKey):
            return key
    raise InvalidArgument(
        f"{path} holds no unencrypted ed25519 private key; make one with `ferry models keygen "
        "KEY` or `openssl genpkey -algorithm ed25519 -out KEY`."
    )


def read_public_key(entry: str, root: Path | None = None) -> Ed25519PublicKey:
    """A ``trust:`` entry: an ed25519 public key (``ssh-ed25519 AAAA…`` or a PEM block), or
    the path of a file holding one (relative to ``root``, the project folder).

    Raises:
        InvalidArgument: the entry is neither, or the key is not ed25519.
    """
    text = entry.strip()
    if not text.startswith(("ssh-", "-----BEGIN")):
        path = Path(text)
        if root is not None and not path.is_absolute():
            path = root / path
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidArgument(
                f"trust: {entry!r:.80} is neither a public key (ssh-ed25519 AAAA...) nor a "
                f"readable key file ({e}). List the KEY.pub that `ferry models keygen` wrote."
            ) from e
    key: object
    try:
        if text.startswith("ssh-"):
            key = serialization.load_ssh_public_key(text.encode())
        else:
            key = serialization.load_pem_public_key(text.encode())
    except (ValueError, UnsupportedAlgorithm) as e:
        raise InvalidArgument(
            f"trust: {entry!r:.80} is not a readable public key ({e}). List the KEY.pub that "
            "`ferry models keygen` wrote."
        ) from e
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidArgument(
            f"trust: {entry!r:.80} is not an ed25519 key; ferryml signs with ed25519."
        )
    return key


def sign_digest(key: Ed25519PrivateKey, digest: str) -> tuple[str, str]:
    """The tag that records ``key``'s signature of the package ``digest``: (name, value)."""
    signature = key.sign(_DOMAIN + digest.encode())
    return SIGNATURE_TAG + key_id(key.public_key()), base64.b64encode(signature).decode()


def check_trusted(
    digest: str,
    tags: Mapping[str, str],
    trust: Sequence[str],
    what: str,
    *,
    root: Path | None = None,
) -> None:
    """Refuse the package ``digest`` unless ``tags`` (its version's) hold a valid
    signature by a key in ``trust``; nothing to check when ``trust`` is empty.

    Raises:
        IntegrityError: the package is unsigned, or signed by no trusted key, or a
            signature does not verify; nothing of it should be deserialized.
        InvalidArgument: a ``trust`` entry is not a public key.
    """
    if not trust:
        return
    keys = {key_id(k): k for k in (read_public_key(entry, root) for entry in trust)}
    signed = {k[len(SIGNATURE_TAG) :]: v for k, v in tags.items() if k.startswith(SIGNATURE_TAG)}
    for kid, value in signed.items():
        key = keys.get(kid)
        if key is None:
            continue
        try:
            key.verify(base64.b64decode(value, validate=True), _DOMAIN + digest.encode())
        except (InvalidSignature, binascii.Error, ValueError) as e:
            raise IntegrityError(
                f"{what}'s signature by trusted key {kid} does not match its package "
                f"{digest[:12]}: it was changed or the signature forged, so it was not loaded."
            ) from e
        return
    problem = "is not signed" if not signed else "is signed by no key that ferry.yaml trusts"
    raise IntegrityError(
        f"{what} {problem}, and ferry.yaml's trust: requires it, so it was not loaded. Sign "
        "it with `ferry models sign NAME/VERSION --key KEY` (and export it again)."
    )
