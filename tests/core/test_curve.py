"""ZeroMQ CURVE keys (mgmt.core.curve) against RFC 7748's, ZeroMQ RFC 32's and libzmq's
published test vectors."""

from __future__ import annotations

import pytest

from mgmt.core.curve import Z85_CHARS, CurveKeys, keypair, x25519, z85_encode


def z85_decode(text: str) -> bytes:
    """Z85 text back to bytes (the test's own reading of RFC 32)."""
    out = b""
    for i in range(0, len(text), 5):
        value = 0
        for ch in text[i : i + 5]:
            value = value * 85 + Z85_CHARS.index(ch)
        out += value.to_bytes(4, "big")
    return out


def test_x25519_matches_rfc_7748() -> None:
    """Alice's key pair of RFC 7748 section 6.1."""
    secret = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    public = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert x25519(secret, (9).to_bytes(32, "little")) == public


def test_z85_matches_rfc_32() -> None:
    """The spec's example: 86 4F D2 6F B5 59 F7 5B is HelloWorld."""
    assert z85_encode(bytes.fromhex("864FD26FB559F75B")) == "HelloWorld"


@pytest.mark.parametrize(
    ("public", "secret"),
    [
        ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"),
        ("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID", "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"),
    ],
)
def test_keypair_matches_libzmq_test_keys(public: str, secret: str) -> None:
    """libzmq's test server and client key pairs: the public key follows from the secret."""
    assert keypair(z85_decode(secret)) == (public, secret)


def test_keys_round_trip_and_hide_secrets() -> None:
    """The JSON form reads back; repr shows no secret; bad keys are refused."""
    keys = CurveKeys.generate(bytes(range(32)), bytes(range(32, 64)))
    assert CurveKeys.from_json(keys.to_json()) == keys
    assert keys.server_secretkey not in repr(keys)
    assert keys.client_secretkey not in repr(keys)
    with pytest.raises(ValueError, match="server_publickey: expected 40 Z85 characters"):
        CurveKeys.from_json(keys.to_json().replace(keys.server_publickey, "short"))
    with pytest.raises(ValueError, match='"v": 1'):
        CurveKeys.from_json("[]")
