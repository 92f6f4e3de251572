"""The self-checking payload: every kind of damage is told apart."""

from __future__ import annotations

import runpy

import pytest

from loadtest.run.payload import RECORD_SIZE, blob_text, check_blob
from loadtest.run.targets.reference import REFERENCE_SERVER


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 4096, 100_003])
def test_blob_has_exact_length_and_checks_ok(n: int) -> None:
    text = blob_text(n, 9)
    assert len(text) == n
    assert text.isascii()
    assert check_blob(text, n, 9).verdict == "ok"


def test_reference_server_generates_identical_payloads() -> None:
    # The server script carries its own copy (it may import nothing of ours); keep them equal.
    server = runpy.run_path(str(REFERENCE_SERVER), run_name="reference_server_under_test")
    for n, seed in ((0, 0), (1, 5), (4097, 123), (1 << 20, 0xFFFFFFFF)):
        assert server["blob_text"](n, seed) == blob_text(n, seed)


def test_truncation_is_detected_with_offset() -> None:
    text = blob_text(10_000, 1)
    result = check_blob(text[:7000], 10_000, 1)
    assert result.verdict == "truncated"
    assert result.offset == 7000


def test_alteration_is_detected_at_its_offset() -> None:
    text = blob_text(200_000, 3)
    altered = text[:150_001] + ("X" if text[150_001] != "X" else "Y") + text[150_002:]
    result = check_blob(altered, 200_000, 3)
    assert (result.verdict, result.offset) == ("corrupt", 150_001)


def test_spliced_records_are_corrupt_even_at_the_right_length() -> None:
    text = blob_text(RECORD_SIZE * 10, 3)
    swapped = text[RECORD_SIZE : 2 * RECORD_SIZE] + text[:RECORD_SIZE] + text[2 * RECORD_SIZE :]
    assert check_blob(swapped, len(text), 3).verdict == "corrupt"


def test_someone_elses_blob_is_misrouted() -> None:
    assert check_blob(blob_text(5000, 8), 5000, 7).verdict == "misrouted"


def test_too_long_is_corrupt() -> None:
    assert check_blob(blob_text(5000, 2) + "x", 5000, 2).verdict == "corrupt"
