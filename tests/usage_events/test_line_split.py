"""Splitting a file into lines a block at a time gives exactly what one split of the whole file gives: the
same lines, nulls and defects (reason, kept head, size), whatever the lines, their lengths, their encoding and
the cut. Block, line and head sizes are lowered so that short inputs cross every boundary."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipelines.usage_events.landing as landing

_CUTS = st.sampled_from([None, "truncated_file", "corrupt_file", "file_too_large", "too_many_lines"])
_PIECES = st.lists(st.sampled_from([b"\n", b"\r\n", b"a", b"bcd", b"\xff", b"\xc3\xa9", b" ", b"{}", b"x" * 9]),
                   max_size=40)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(pieces=_PIECES, cut=_CUTS, block=st.integers(1, 12), max_line=st.integers(1, 10), head=st.integers(1, 6))
def test_blockwise_split_equals_one_split(pieces: list[bytes], cut: str | None, block: int, max_line: int,
                                          head: int) -> None:
    data = b"".join(pieces)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(landing, "MAX_LINE_BYTES", max_line)
        patch.setattr(landing, "QUARANTINED_HEAD_BYTES", head)
        whole_lines, whole_defects = landing._split_lines(data, cut)
        patch.setattr(landing, "_SPLIT_BLOCK", block)
        lines, defects = landing._split(data, cut)
    assert lines.to_pylist() == whole_lines.to_pylist()
    assert defects == whole_defects
