"""Which code produced a benchmark run: the git commit (and a dirty flag) of the synthaug checkout.

Every downstream run stores :func:`current_commit` in its ``result.json`` and every report records its own
commit and the set of its runs' commits. :func:`is_ancestor` answers "does this run include that
behaviour change?" with ``git merge-base --is-ancestor`` (``None`` when git cannot tell: no checkout, an
unknown commit, or a run whose commit was never recorded).

The machine line and date live in :mod:`synthaug.training.provenance`.

Example::

    >>> c = current_commit()          # None outside a git checkout
    >>> c is None or len(c.sha) == 40
    True
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthaug.errors import ValidationError

__all__ = ["Commit", "repo_root", "current_commit", "resolve_commit", "is_ancestor", "Predates", "parse_predates"]


@dataclass(frozen=True)
class Commit:
    """A git commit of the synthaug checkout.

    Attributes:
        sha: the full 40-hex commit id (``HEAD``).
        dirty: whether tracked files differed from that commit (uncommitted changes were part of the run).
    """

    sha: str
    dirty: bool

    @property
    def short(self) -> str:
        return self.sha[:7]

    def label(self) -> str:
        """``"5d14e12"`` or ``"5d14e12 (dirty)"``."""
        return self.short + (" (dirty)" if self.dirty else "")

    def to_dict(self) -> dict[str, Any]:
        return {"sha": self.sha, "dirty": self.dirty}

    @classmethod
    def from_dict(cls, d: Any) -> Commit | None:
        """The commit a result or report recorded; ``None`` for files written before commits were recorded."""
        if not isinstance(d, Mapping) or not isinstance(d.get("sha"), str) or not d["sha"]:
            return None
        return cls(sha=str(d["sha"]), dirty=bool(d.get("dirty", False)))


def repo_root() -> Path | None:
    """The git checkout the imported synthaug package lives in (None for an installed wheel)."""
    here = Path(__file__).resolve().parent
    out = _git(["rev-parse", "--show-toplevel"], here)
    return Path(out) if out else None


def _git(args: list[str], cwd: Path) -> str | None:
    """stdout of ``git args`` in ``cwd`` (stripped), or None when git is missing or the command fails."""
    try:
        proc = subprocess.run(["git", *args], cwd=str(cwd), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def current_commit(repo: Path | None = None) -> Commit | None:
    """``HEAD`` of ``repo`` (default: the synthaug checkout) and whether tracked files are modified."""
    root = repo if repo is not None else repo_root()
    if root is None:
        return None
    sha = _git(["rev-parse", "HEAD"], root)
    if not sha:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    return Commit(sha=sha, dirty=bool(status))


def resolve_commit(rev: str, repo: Path | None = None) -> str:
    """The full sha of ``rev`` (a commit id or any git revision); :class:`ValidationError` if unknown."""
    root = repo if repo is not None else repo_root()
    if root is None:
        raise ValidationError(
            f"cannot resolve commit {rev!r}: synthaug is not imported from a git checkout, so the runs' commits "
            "cannot be compared. Build the report from a git clone of synthaug."
        )
    sha = _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root)
    if not sha:
        raise ValidationError(f"commit {rev!r} is not in the repository {root}; give a commit id from `git log`.")
    return sha


def is_ancestor(ancestor: str, commit: str, repo: Path | None = None) -> bool | None:
    """Whether ``ancestor`` is ``commit`` or one of its ancestors (``git merge-base --is-ancestor``).

    ``None`` when git cannot tell (no checkout, or either commit is not in the repository).
    """
    root = repo if repo is not None else repo_root()
    if root is None:
        return None
    try:
        proc = subprocess.run(["git", "merge-base", "--is-ancestor", ancestor, commit], cwd=str(root),
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return {0: True, 1: False}.get(proc.returncode)


@dataclass(frozen=True)
class Predates:
    """A behaviour change the runs depend on: runs made from commits that do not contain ``commit`` are
    flagged in the report with ``text``.

    Attributes:
        commit: the commit that introduced the change (as given: short or full id).
        text: what changed, e.g. ``"keep_outside_window: CT generators keep out-of-window HU"``.
    """

    commit: str
    text: str


def parse_predates(spec: str) -> Predates:
    """``"5d14e12:keep_outside_window"`` -> :class:`Predates`; :class:`ValidationError` on a malformed spec."""
    commit, sep, text = spec.partition(":")
    commit, text = commit.strip(), text.strip()
    if not sep or not commit or not text:
        raise ValidationError(
            f"--predates takes COMMIT:TEXT (the commit of a behaviour change and what it changed), got {spec!r}; "
            "e.g. --predates '5d14e12:keep_outside_window (CT generators keep out-of-window HU)'."
        )
    return Predates(commit=commit, text=text)
