"""Specification of atomic output writes: never half a file, never a replaced link or device."""

from __future__ import annotations

import os

import pytest

from pytest_voicelatency.errors import VoiceLatencyError
from pytest_voicelatency.files import write_atomic


def test_writes_the_whole_text_and_creates_the_directory(tmp_path):
    """A missing parent directory is created; the file holds exactly the text."""
    out = write_atomic(tmp_path / "ci" / "results.json", '{"a": 1}')
    assert out.read_text() == '{"a": 1}' and not list(out.parent.glob(".*.tmp"))


def test_a_symlink_is_written_through_not_replaced(tmp_path):
    """Writing to a link updates the file it points to; the link stays a link."""
    real = tmp_path / "real" / "base.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomic(link, '{"new": true}')
    assert link.is_symlink() and real.read_text() == '{"new": true}'


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_directory_is_refused_not_replaced(tmp_path):
    """A path that is not a regular file is left alone, with an error naming it."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        with pytest.raises(VoiceLatencyError, match="is not a regular file"):
            write_atomic(path, "x")
    assert not fifo.is_file() and fifo.exists()
