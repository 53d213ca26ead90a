"""progress() and TrainProgress: the plain-text lines a CI log or a pipe gets."""

from __future__ import annotations

from ablations import progress


def test_plain_progress_names_the_item_and_ends_with_the_total(capsys, monkeypatch):
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    assert list(progress.progress(["a", "b"], desc="task")) == ["a", "b"]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "[task] 0/2 a (starting)"
    assert lines[1].startswith("[task] 1/2 b (eta ")
    assert lines[-1].startswith("[task] 2/2 done in ")


def test_nothing_to_do_prints_nothing(capsys):
    assert list(progress.progress([], desc="complexity")) == []
    assert capsys.readouterr().err == ""


def test_long_intervals_between_evaluations_still_show_progress(capsys, monkeypatch):
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)
    with progress.TrainProgress(total=10, initial=0, desc="x") as bar:
        bar.advance()
    assert capsys.readouterr().err.startswith("[x] 1/10 eta")
