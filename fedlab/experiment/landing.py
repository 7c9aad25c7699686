"""Results measured in a git worktree land in this checkout, one commit each (``fedlab land``).

A long grid runs from a clean commit in a worktree of its own (``git worktree add ../grid HEAD``), so the code it
measures never changes under it while this checkout is edited. :func:`land` copies each result file the
worktree has finished (with its predictions) into this checkout and commits it alone, with a message that
names the run, the commit it was made from, the CPU, the CPU share other processes took and the held-out
score; a sweep record lands the same way. A run that cannot stand as a measurement is not landed but named with
the reason, to be rerun: measured while other processes took more than
:data:`~fedlab.experiment.provenance.OTHERS_CPU_LIMIT` % of the CPU, made from a dirty tree, or not finished.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fedlab.errors import ConfigError

from .config import aggregation_label
from .provenance import OTHERS_CPU_LIMIT, cpu_label, measured_on_shared_cpu
from .store import ResultStore, RunResult

#: result folders that are made in the checkout itself (from the landed results), never landed
NOT_LANDED = ("verdicts",)


@dataclass
class Landing:
    """One result file of the worktree: landed (``commit``) or held back (``reason``)."""

    path: str  # relative to the repository root, e.g. results/federated/<stem>.json
    files: list[str]
    message: str = ""
    commit: str | None = None
    reason: str | None = None


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        raise ConfigError(f"git {' '.join(args)} in {root} failed: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


def finished_files(worktree: Path) -> list[str]:
    """Result JSON files the worktree has written or changed since its commit (paths relative to its root)."""
    if not (worktree / ".git").exists():
        raise ConfigError(
            f"{worktree} is not a git checkout. Fix: run the grid in a worktree "
            "(git worktree add ../grid HEAD) and pass its folder."
        )
    status = _git(worktree, "status", "--porcelain", "--untracked-files=all", "--", "results")
    paths = [line[3:].strip() for line in status.splitlines() if line[:2] in ("??", " M", "M ", "A ")]
    return sorted(p for p in paths if p.endswith(".json") and Path(p).parts[1] not in NOT_LANDED)


def run_message(result: RunResult, label: str = "") -> str:
    """The commit message of a landed run: what ran, from which commit, on which CPU, and what it scored."""
    c, m, man = result.config, result.metrics, result.manifest
    contention = result.timings.contention
    others = f"others {contention.others_cpu_percent:.1f} %" if contention else "others not measured"
    where = f"{'dirty' if man.git_dirty else 'clean'} {(man.git_sha or '?')[:7]}, {cpu_label(man.cpu_signature)}"
    what = f"{c['setting']} {c['model']} {c['dataset']}"
    if c["setting"] != "zeroshot":
        how = aggregation_label(c) if c["setting"] == "federated" else "fedavg"
        what += f" {c['method']}{'' if how == 'fedavg' else ' ' + how} seed {c['seed']}, lr {c['lr']:g}"
    score = ", ".join(f"{k} {m[k]:.3f}" for k in ("macro_f1", "accuracy") if k in m)
    wall = result.timings.wall_s
    minutes = f"; {wall / 60:.1f} min" if wall is not None else ""
    split = "validation" if c.get("eval_on") == "validation" else "held-out"  # a sweep's runs score validation rows
    return f"{label + ' ' if label else ''}{what} ({where}, {others}): {split} {score} on {m.get('n')} rows{minutes}"


def _plan(worktree: Path, rel: str, label: str) -> Landing:
    path = worktree / rel
    if Path(rel).parts[1] == "sweeps":
        record = json.loads(path.read_text())
        return Landing(
            rel,
            [rel],
            f"{label + ' ' if label else ''}sweep {record.get('model')} {record.get('dataset')} {record.get('method')}: "
            f"chosen lr {record.get('chosen_lr')} ({record.get('metric')} on the validation split)",
        )
    result = ResultStore.read(path)
    if result is None or not result.ok:
        status = "unreadable" if result is None else result.status
        return Landing(rel, [rel], reason=f"not finished ({status})")
    files = [rel] + ([str(Path(rel).parent / result.predictions_file)] if result.predictions_file else [])
    landing = Landing(rel, files, run_message(result, label))
    if result.manifest.git_dirty:
        landing.reason = f"made from a dirty tree ({', '.join(result.manifest.dirty_paths or [])})"
    elif measured_on_shared_cpu(result.timings):
        others = result.timings.contention.others_cpu_percent if result.timings.contention else None
        landing.reason = f"measured on a shared CPU (others {others} % > {OTHERS_CPU_LIMIT} %): rerun it alone"
    return landing


def land(worktree: str | Path, home: str | Path, *, label: str = "", dry_run: bool = False) -> list[Landing]:
    """Copy every finished result of ``worktree`` into ``home`` and commit each alone (its files only: whatever
    else ``home`` has staged or changed stays as it is). Results already landed (the same bytes) are skipped;
    the held-back ones are returned with their reason and left where they are."""
    worktree, home = Path(worktree).resolve(), Path(home).resolve()
    if worktree == home:
        raise ConfigError("fedlab land: the worktree is this checkout. Fix: pass the grid's worktree (e.g. ../grid).")
    out = []
    for rel in finished_files(worktree):
        landing = _plan(worktree, rel, label)
        if landing.reason is None:
            if all((home / f).is_file() and filecmp.cmp(worktree / f, home / f, shallow=False) for f in landing.files):
                continue  # landed before
            if not dry_run:
                for f in landing.files:
                    (home / f).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(worktree / f, home / f)
                _git(home, "add", "--", *landing.files)
                _git(home, "commit", "--quiet", "--only", "-m", landing.message, "--", *landing.files)
                landing.commit = _git(home, "rev-parse", "--short", "HEAD").strip()
        out.append(landing)
    return out
