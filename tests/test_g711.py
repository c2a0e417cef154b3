"""G.711 through gateway.audio: bit-exact with audioop over every PCM16 input and every code."""
import array
import struct
import warnings

import pytest

from gateway import audio
from tests.conftest import require

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # stdlib up to 3.12; the audioop-lts package on 3.13+
    except ImportError:
        audioop = None

ALL_PCM = struct.pack("<65536h", *range(-32768, 32768))
ALL_CODES = bytes(range(256))
CODECS = [
    ("ulaw", audio.ulaw_encode, audio.ulaw_decode, "lin2ulaw", "ulaw2lin"),
    ("alaw", audio.alaw_encode, audio.alaw_decode, "lin2alaw", "alaw2lin"),
]


@pytest.fixture
def ref():
    require(audioop is not None, "audioop (or audioop-lts) is not installed")
    return audioop


@pytest.mark.parametrize("name,enc,dec,ref_enc,ref_dec", CODECS)
def test_encode_all_65536_inputs_match_audioop(ref, name, enc, dec, ref_enc, ref_dec):
    assert enc(ALL_PCM) == getattr(ref, ref_enc)(ALL_PCM, 2)


@pytest.mark.parametrize("name,enc,dec,ref_enc,ref_dec", CODECS)
def test_decode_all_256_codes_match_audioop(ref, name, enc, dec, ref_enc, ref_dec):
    assert dec(ALL_CODES) == getattr(ref, ref_dec)(ALL_CODES, 2)


@pytest.mark.parametrize("name,enc,dec,ref_enc,ref_dec", CODECS)
def test_decode_then_encode_is_identity_on_codes(name, enc, dec, ref_enc, ref_dec):
    # Every code decodes to a level that encodes back to an equivalent code (A-law/mu-law have no
    # duplicate levels except mu-law's two zeros, 0x7F and 0xFF, which both decode to 0).
    back = enc(dec(ALL_CODES))
    assert dec(back) == dec(ALL_CODES)


@pytest.mark.parametrize("name,enc,dec,ref_enc,ref_dec", CODECS)
def test_accepts_bytearray_memoryview_and_misaligned_views(name, enc, dec, ref_enc, ref_dec):
    pcm = ALL_PCM[:640]
    expected = enc(pcm)
    assert enc(bytearray(pcm)) == expected
    assert enc(memoryview(pcm)) == expected
    assert enc(memoryview(array.array("h", struct.unpack("<320h", pcm)))) == expected
    shifted = bytearray(b"\0" + pcm)
    assert enc(memoryview(shifted)[1:]) == expected          # odd address: copied, not misread
    assert dec(memoryview(b"\0" + expected)[1:]) == dec(expected)
    assert enc(b"") == b"" and dec(b"") == b""


@pytest.mark.parametrize("name,enc,dec,ref_enc,ref_dec", CODECS)
def test_bad_input_names_the_problem(name, enc, dec, ref_enc, ref_dec):
    with pytest.raises(ValueError, match="even number of bytes"):
        enc(b"\x01\x02\x03")
    with pytest.raises(TypeError, match="expected bytes"):
        enc("text")
    with pytest.raises(TypeError, match="expected bytes"):
        dec([1, 2, 3])
    with pytest.raises(ValueError, match="contiguous"):
        enc(memoryview(ALL_PCM)[::2])
