"""The project speaks to its users about itself: no tracked file talks about the machinery it was
built with (issue trackers, remote-run services and their limits, one machine's paths).

One list of patterns, scanned line by line over `git ls-files`. A short allow-list keeps the
legitimate uses: nox and pytest sessions, and the CI script's own data folder."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

# What must not be said, by what it is about.
PATTERNS: dict[str, str] = {
    "issue number": r"\b[Ii]ssues? #?[0-9]+",
    "bare issue reference": r"(?<![\w/&])#[0-9]+\b",  # not "owner/repo#14"
    "session": r"\b[Ss]essions?\b",
    "carry": r"\b[Cc]arr(?:y|ied|ying)\b",
    "$OUT": r"\$\{?OUT\b",
    "files_at": r"\bfiles_at\b",
    "timeout_s": r"\btimeout_s\b",
    "lent": r"\blent\b",
    "device run": r"\b[Dd]evice (?:run|call|time|command)s?\b",
    "a later call": r"\b[Aa] later (?:call|session)\b",
    "GPU image": r"\bGPU image\b",
    "runbook": r"[Rr]unbook",
    "service limit": r"\b[0-9]+ files of at most\b|\b[0-9]+ ?[MG]i?B in all\b",
    "machine path": r"/work/|/root/|/farm/|\.\./shared\b",
}
SCAN = re.compile("|".join(f"(?P<g{i}>{p})" for i, p in enumerate(PATTERNS.values())))
NAMES = {f"g{i}": kind for i, kind in enumerate(PATTERNS)}

# Legitimate uses, removed from a line before it is scanned.
ALLOWED = re.compile(
    r"\bnox -s\b|\bnox\.Session\b|@nox\.session\b|\bsession\.[a-z_]+\b|\bsession: nox\.Session\b"
    r"|\bscope=[\"']session[\"']|\b(?:nox|pytest) sessions?\b"
)
# Paths where one kind of hit is allowed: CI's own script names the CI machine's data folder,
# and every session in the noxfile is one of nox's.
ALLOWED_KINDS = {".ci/": {"machine path"}, "noxfile.py": {"session"}}

# Not prose: tables, data, pinned versions, images, and vendored code.
SKIP = re.compile(
    r"\.(?:csv|json|png|jpe?g|svg|pt|gz|lock)$|^requirements/.*\.txt$|^bench/third_party/"
)


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [path for path in listed.split("\0") if path and path != THIS and not SKIP.search(path)]


def hits(path: str, text: str) -> list[str]:
    """Each offending line of `text` as `path:line: [kind] text`."""
    allowed = {
        k for prefix, kinds in ALLOWED_KINDS.items() if path.startswith(prefix) for k in kinds
    }
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        kinds = {NAMES[m.lastgroup] for m in SCAN.finditer(ALLOWED.sub("", line)) if m.lastgroup}
        if kinds - allowed:
            found.append(f"{path}:{number}: [{', '.join(sorted(kinds))}] {line.strip()}")
    return found


def test_tracked_files_do_not_talk_about_the_machinery_they_were_built_with():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to list")
    found = []
    for path in tracked_files():
        try:
            data = (ROOT / path).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue  # deleted or moved in the work tree, not yet in the index
        if b"\0" in data:
            continue  # binary
        found += hits(path, data.decode("utf-8", errors="replace"))
    if found:
        pytest.fail(f"{len(found)} lines talk about the machinery:\n" + "\n".join(found), False)


EXAMPLES = [
    ("issue number", "see issue 12"),
    ("issue number", "Issues 10 and 11"),
    ("bare issue reference", "as in #14."),
    ("session", "the first GPU session"),
    ("carry", "carry the wheels"),
    ("carry", "the carried files"),
    ("$OUT", "copy it to $OUT/results"),
    ("files_at", "bring it back from files_at"),
    ("timeout_s", "timeout_s 600"),
    ("lent", "a machine lent to the task"),
    ("device run", "one device run"),
    ("device run", "15 minutes of device time"),
    ("a later call", "a later call can finish it"),
    ("GPU image", "what the GPU image holds"),
    ("runbook", "the Runbook"),
    ("service limit", "8 files of at most 16 MB, 64 MB in all"),
    ("machine path", "cp /work/shared/data.tar.gz ."),
    ("machine path", "under /root/.cache"),
    ("machine path", "/farm/datasets"),
    ("machine path", "ABLATE_DATA=../shared/data"),
]


def test_every_kind_has_an_example():
    assert {kind for kind, _ in EXAMPLES} == set(PATTERNS)


@pytest.mark.parametrize(("kind", "line"), EXAMPLES)
def test_the_scan_finds_each_kind_of_word(kind, line):
    [hit] = hits("README.md", line)
    assert kind in hit


@pytest.mark.parametrize(
    "line",
    [
        "nox -s tests",
        "def tests(session: nox.Session) -> None:",
        '    session.run("pytest", *session.posargs)',
        '@pytest.fixture(scope="session")',
        "Each nox session installs the package",
        "pytorch/vision#9606",
        "decoded GPU images",
        "the run's work/ folder",
    ],
)
def test_the_scan_allows_legitimate_uses(line):
    assert not hits("noxfile.py", line)


def test_ci_may_name_its_data_folder_but_nothing_else():
    assert not hits(".ci/run", 'cifar="$(pwd)/../shared/datasets/cifar10-jpeg.tar.gz"')
    assert hits(".ci/run", "# issue 12")
    assert hits("README.md", 'cifar="$(pwd)/../shared/datasets/cifar10-jpeg.tar.gz"')


def test_each_hit_names_its_file_line_and_kind():
    text = "fine ±\nsee issue 12\r\nİİİ fine\nthe runbook, one session\n"
    assert hits("a.md", text) == [
        "a.md:2: [issue number] see issue 12",
        "a.md:4: [runbook, session] the runbook, one session",
    ]


def test_the_noxfile_may_speak_of_sessions_but_of_nothing_else():
    assert not hits("noxfile.py", "    install(session)  # every session installs")
    assert hits("noxfile.py", "    # issue 12")
    assert hits("README.md", "    install(session)")
