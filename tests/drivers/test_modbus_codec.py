"""Register codec: fixed vectors from device manuals, and encode/decode round trips."""

from __future__ import annotations

import functools
import random
import struct
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modbus.codec import (
    ORDERS,
    TYPES,
    NonFiniteValueError,
    channel_value,
    decode,
    decode_bit,
    decode_every_order,
    decode_string,
    decode_value,
    encode,
    encode_bit,
    encode_string,
    implausible,
    register_count,
    scale_value,
    text_number,
    value_decoder,
)

INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
FLOAT32_MIN_NORMAL = 2.0**-126
orders = st.sampled_from(ORDERS)


def float32_bits(value: float) -> bytes | None:
    """The float32 bytes of a value, or None if it overflows float32."""
    try:
        return struct.pack(">f", value)
    except OverflowError:
        return None


@pytest.mark.parametrize(
    ("order", "registers"),
    [
        ("ABCD", [0x4144, 0xCCCD]),
        ("CDAB", [0xCCCD, 0x4144]),
        ("BADC", [0x4441, 0xCDCC]),
        ("DCBA", [0xCDCC, 0x4441]),
    ],
)
def test_float32_12_3_in_every_order(order: str, registers: list[int]) -> None:
    assert encode(12.3, "float32", order) == registers
    assert decode(registers, "float32", order) == 12.3


@pytest.mark.parametrize(
    ("order", "registers"),
    [
        ("ABCD", [0x1234, 0x5678]),
        ("CDAB", [0x5678, 0x1234]),
        ("BADC", [0x3412, 0x7856]),
        ("DCBA", [0x7856, 0x3412]),
    ],
)
def test_uint32_in_every_order(order: str, registers: list[int]) -> None:
    assert decode(registers, "uint32", order) == 0x12345678
    assert encode(0x12345678, "uint32", order) == registers


def test_16_bit_types_only_swap_bytes() -> None:
    assert decode([0xFFFF], "int16") == -1
    assert decode([0x1234], "uint16", "CDAB") == 0x1234
    assert decode([0x3412], "uint16", "BADC") == 0x1234
    assert encode(0x1234, "uint16", "DCBA") == [0x3412]


def test_64_bit_word_swap_reverses_all_four_words() -> None:
    assert encode(0x0001000200030004, "uint64", "CDAB") == [4, 3, 2, 1]
    assert decode([0x3FF0, 0, 0, 0], "float64") == 1.0


def test_register_counts() -> None:
    counts = {t: register_count(t) for t in TYPES}
    assert counts == {
        "int16": 1,
        "uint16": 1,
        "int32": 2,
        "uint32": 2,
        "float32": 2,
        "int64": 4,
        "uint64": 4,
        "float64": 4,
    }


@pytest.mark.parametrize(
    ("registers", "message"),
    [([0x7FC0, 0x0000], "NaN"), ([0x7F80, 0x0000], "infinite"), ([0xFF80, 0x0000], "infinite")],
)
def test_nan_and_infinity_are_not_numbers(registers: list[int], message: str) -> None:
    with pytest.raises(NonFiniteValueError, match=message):
        decode(registers, "float32")


def test_scale_and_offset_are_exact_in_decimal() -> None:
    assert decode_value([123], "int16", scale=0.1) == 12.3
    assert decode_value(encode(12.3, "float32"), "float32", scale=10, offset=-3) == 120.0
    assert scale_value(3, 0.1) == 0.3


def test_unscaled_integers_stay_exact_integers() -> None:
    assert type(decode_value(encode(-123456, "int32"), "int32")) is int
    assert decode_value(encode(-123456, "int32"), "int32") == -123456
    big = 2**63 - 1  # beyond 2**53: a float would round it
    assert decode_value(encode(big, "int64"), "int64") == big
    assert type(channel_value(True)) is int and channel_value(True) == 1
    assert channel_value(2**64 - 1) == float(2**64 - 1)  # beyond the buffer's signed 64 bits
    assert type(decode_value([123], "int16", scale=0.1)) is float
    assert type(decode_value([123], "int16", offset=1)) is float
    assert type(decode_value(encode(2.0, "float32"), "float32")) is float


def test_text_ends_at_the_first_nul_and_must_be_printable() -> None:
    assert decode_string(encode_string("SO2-A1", 4)) == "SO2-A1"
    assert decode_string([0x4142, 0x0043, 0x4400]) == "AB"
    assert decode_string([0x4142, 0x2020]) == "AB"
    with pytest.raises(ValueError, match="not printable ASCII"):
        decode_string([0x4107])  # BEL


def test_implausible_floats_and_every_byte_order() -> None:
    registers = encode(1.0, "float32", "DCBA")
    decoded = decode_every_order(registers, "float32")
    assert decoded["DCBA"] == 1.0
    assert list(decoded) == ["ABCD", "CDAB", "BADC", "DCBA"]
    assert implausible(decoded["ABCD"], "float32")  # 4.6e-41: denormal, a wrong byte order
    assert not implausible(12.3, "float32") and not implausible(0.0, "float32")
    assert implausible(2.4e-41, "float32") and not implausible(2.4e-41, "float64")
    assert implausible(3.9e23, "float64") and implausible(-2e15, "float32")
    assert "NaN" in decode_every_order([0x7FC0, 0x0000], "float32")["ABCD"]


def test_scaling_overflow_is_not_a_number() -> None:
    with pytest.raises(NonFiniteValueError):
        scale_value(1e308, 10.0)


def test_wrong_register_count_and_out_of_range_values_are_refused() -> None:
    with pytest.raises(ValueError, match="float32 needs 2 registers, got 1"):
        decode([0x4144], "float32")
    with pytest.raises(ValueError, match="16-bit"):
        decode([0x10000], "uint16")
    with pytest.raises(ValueError, match="does not fit in int16"):
        encode(40000, "int16")
    with pytest.raises(ValueError, match="does not fit in float32"):
        encode(1e39, "float32")
    with pytest.raises(ValueError, match="unknown byte order"):
        encode(1, "int16", "ABDC")  # type: ignore[arg-type]


@given(data=st.data(), order=orders, type=st.sampled_from(sorted(INT_RANGES)))
def test_integers_round_trip(data: st.DataObject, order: str, type: str) -> None:
    low, high = INT_RANGES[type]
    value = data.draw(st.integers(low, high))
    registers = encode(value, type, order)
    assert len(registers) == register_count(type)
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode(registers, type, order) == value


@given(data=st.data(), order=orders, type=st.sampled_from(TYPES))
def test_registers_round_trip_through_decoded_value(
    data: st.DataObject, order: str, type: str
) -> None:
    count = register_count(type)
    registers = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=count, max_size=count))
    try:
        value = decode(registers, type, order)
    except NonFiniteValueError:
        return
    assert encode(value, type, order) == registers


@given(value=st.floats(width=32, allow_nan=False, allow_infinity=False), order=orders)
def test_float32_decodes_to_the_shortest_decimal_with_the_same_bits(
    value: float, order: str
) -> None:
    decoded = decode(encode(value, "float32", order), "float32", order)
    bits = struct.pack(">f", value)
    assert struct.pack(">f", decoded) == bits
    digits = len(Decimal(repr(decoded)).normalize().as_tuple().digits)
    assert digits <= 9
    if 0 < abs(value) < FLOAT32_MIN_NORMAL:
        return  # the search starts at 6 digits; only subnormals have shorter forms
    for shorter in range(1, digits):
        assert float32_bits(float(f"{decoded:.{shorter}g}")) != bits


@given(mantissa=st.integers(-999_999, 999_999), exponent=st.integers(-12, 12), order=orders)
def test_float32_of_a_short_decimal_decodes_to_that_decimal(
    mantissa: int, exponent: int, order: str
) -> None:
    value = float(f"{mantissa}e{exponent}")  # at most 6 significant digits
    assert decode(encode(value, "float32", order), "float32", order) == value


@given(value=st.floats(allow_nan=False, allow_infinity=False), order=orders)
def test_float64_round_trips_exactly(value: float, order: str) -> None:
    decoded = decode(encode(value, "float64", order), "float64", order)
    assert struct.pack(">d", decoded) == struct.pack(">d", value)


# Bits in registers and text in registers.


@given(register=st.integers(0, 0xFFFF), bit=st.integers(0, 15), value=st.booleans())
def test_bit_round_trips_and_leaves_the_other_bits_alone(
    register: int, bit: int, value: bool
) -> None:
    changed = encode_bit(register, bit, value)
    assert decode_bit(changed, bit) == int(value)
    assert changed & ~(1 << bit) == register & ~(1 << bit)
    assert encode_bit(changed, bit, bool(decode_bit(register, bit))) == register


def test_bit_zero_is_the_least_significant() -> None:
    assert [decode_bit(0x8001, b) for b in (0, 1, 15)] == [1, 0, 1]
    with pytest.raises(ValueError, match="bit 16"):
        decode_bit(1, 16)


ascii_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)


@given(text=ascii_text, extra=st.integers(0, 3), order=orders)
def test_string_round_trips_in_every_order(text: str, extra: int, order: str) -> None:
    length = (len(text) + 1) // 2 + extra
    registers = encode_string(text, length, order)
    assert len(registers) == length
    assert decode_string(registers, order) == text


def test_string_byte_orders_and_numbers() -> None:
    assert encode_string("AB", 1) == [0x4142]
    assert encode_string("AB", 1, "BADC") == [0x4241]
    assert decode_string([0x3132, 0x2E35, 0x2000], "CDAB") == "12.5"
    assert text_number(" 12.5 ", scale=2) == 25.0
    with pytest.raises(ValueError, match="text 'OVER' is not a number"):
        text_number("OVER")
    with pytest.raises(ValueError, match="not printable ASCII"):
        decode_string([0xFFFF])


@given(value=st.floats(allow_nan=False, allow_infinity=False, width=32), order=orders)
def test_number_written_as_text_round_trips(value: float, order: str) -> None:
    text = repr(value)
    registers = encode_string(text, (len(text) + 1) // 2, order)
    assert text_number(decode_string(registers, order)) == value


@given(
    registers=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125),
    order=orders,
)
def test_any_registers_give_printable_text_or_a_clear_error(
    registers: list[int], order: str
) -> None:
    try:
        text = decode_string(registers, order)
    except ValueError as exc:
        assert "not printable ASCII text" in str(exc)
        return
    assert len(text) <= 2 * len(registers)
    assert all(0x20 <= ord(c) <= 0x7E for c in text) and not text.endswith(" ")


def _outcome(fn, registers):
    try:
        value = fn(registers)
    except ValueError as exc:
        return type(exc).__name__, str(exc)
    return type(value).__name__, repr(value)


def test_a_channels_decoder_gives_what_decode_value_gives():
    """``value_decoder`` (made once per channel, what a poll calls) against ``decode_value``
    for every type, byte order and a scale, on random registers and on the registers of NaN,
    infinities, denormals and out-of-range words: the same value (type included) or the same
    error, always."""
    rng = random.Random(17)
    special = [
        [0x7FC0, 0x0000],  # float32 NaN
        [0x7F80, 0x0000],  # +inf
        [0xFF80, 0x0000],  # -inf
        [0x0000, 0x0001],  # denormal
        [0x4144, 0xCCCD],  # 12.3
        [0x10000, 0],  # not a 16-bit word
        [0x7FF8, 0, 0, 0],  # float64 NaN
        [0x7FF0, 0, 0, 0],  # float64 +inf
    ]
    for type_ in TYPES:
        for order in ORDERS:
            for scale, offset in ((1.0, 0.0), (0.1, -5.0)):
                fast = value_decoder(type_, order, scale, offset)  # type: ignore[arg-type]
                cases = special + [
                    [rng.randrange(0x10000) for _ in range(register_count(type_))]  # type: ignore[arg-type]
                    for _ in range(300)
                ]
                for registers in cases:
                    reference = functools.partial(
                        decode_value, type=type_, order=order, scale=scale, offset=offset
                    )
                    expected = _outcome(reference, registers)
                    assert _outcome(fast, registers) == expected, (type_, order, scale, registers)


# The float32 fast path (issue 33) gives the very values the code before it gave: a golden file
# made with that code (5,000 register pairs: random bit patterns, fresh analyzer values, edges).

GOLDEN = Path(__file__).parent / "data" / "float32_shortest_golden.txt"


def test_float32_decode_matches_the_golden_file_made_before_the_fast_path() -> None:
    lines = GOLDEN.read_text().split()
    pairs = list(zip(lines[0::2], lines[1::2], strict=True))
    assert len(pairs) > 4_900
    per_channel = value_decoder("float32")  # what the driver calls each poll
    for _ in range(2):  # first misses, then hits in the shortest-decimal cache
        for word_hex, expected in pairs:
            word = int(word_hex, 16)
            registers = [word >> 16, word & 0xFFFF]
            assert repr(per_channel(registers)) == expected, word_hex
            assert repr(decode(registers, "float32")) == expected, word_hex


@given(word=st.integers(0, 0xFFFFFFFF))
def test_float32_decode_is_the_smallest_of_6_to_9_digits_that_packs_back(word: int) -> None:
    big_endian = word.to_bytes(4, "big")
    (value,) = struct.unpack(">f", big_endian)
    if value != value or value in (float("inf"), float("-inf")):
        return
    expected = value
    for precision in range(6, 10):  # brute force, format() and a fresh struct call
        candidate = float(format(value, f".{precision}g"))
        try:
            if struct.pack(">f", candidate) == big_endian:
                expected = candidate
                break
        except OverflowError:
            continue
    assert repr(decode([word >> 16, word & 0xFFFF], "float32")) == repr(expected)
