import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cowbench.units import MAX_SIZE, format_bytes, is_power_of_two, parse_duration, parse_size


@pytest.mark.parametrize("text,expected", [
    ("4096", 4096), (4096, 4096), ("4k", 4096), ("4K", 4096), ("64KiB", 65536),
    ("2GiB", 2 << 30), ("1.5MiB", 1536 * 1024), ("2 GiB", 2 << 30), ("0", 0), ("1T", 1 << 40),
    (65536.0, 65536),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["-1", -5, "4KB", "2GB", "1.3B", "lots", "", "4 parsecs", True,
                                 None, [1], 1.5, float("nan")])
def test_parse_size_refuses(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_ambiguous_unit_message_suggests_the_binary_one():
    with pytest.raises(ValueError, match="MiB"):
        parse_size("10MB")


@pytest.mark.parametrize("text,expected", [
    ("30s", 30.0), ("10m", 600.0), ("2h", 7200.0), ("1d", 86400.0), ("500ms", 0.5), (5, 5.0),
    ("1.5", 1.5),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["-1s", "10 fortnights", "x", -1, math.inf, False])
def test_parse_duration_refuses(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@given(st.integers(min_value=0, max_value=2**50), st.sampled_from(["", "B", "KiB", "k", "MiB",
                                                                    "M", "GiB", "g"]))
def test_size_units_scale(n, unit):
    scale = {"": 1, "B": 1, "KiB": 1024, "k": 1024, "MiB": 2**20, "M": 2**20, "GiB": 2**30,
             "g": 2**30}[unit]
    if n * scale <= MAX_SIZE:
        assert parse_size(f"{n}{unit}") == n * scale
    else:  # int64 everywhere downstream (numpy, QEMU, fio): refused, not wrapped around
        with pytest.raises(ValueError, match="too large"):
            parse_size(f"{n}{unit}")


def test_helpers():
    assert is_power_of_two(65536) and not is_power_of_two(65535) and not is_power_of_two(0)
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(float("nan")) == "-"
