"""progress(): the plain-text lines a CI log or a pipe gets."""

from __future__ import annotations

import io

from ablations.progress import progress


def test_plain_progress_names_the_item_and_ends_with_the_total():
    out = io.StringIO()
    assert list(progress(["a", "b"], desc="task", stream=out, min_interval_s=0.0)) == ["a", "b"]
    lines = out.getvalue().splitlines()
    assert lines[0] == "[task] 0/2 a (starting)"
    assert lines[1].startswith("[task] 1/2 b (eta ")
    assert lines[-1].startswith("[task] 2/2 done in ")


def test_nothing_to_do_prints_nothing():
    out = io.StringIO()
    assert list(progress([], desc="complexity", stream=out)) == []
    assert out.getvalue() == ""
