"""The dependency lock (``requirements/lock.txt``): check that an environment holds exactly the locked versions, or
write the lock from an environment (``make lock``).

``check_lock.py LOCK`` exits 1 when a locked package is missing or installed at another version, or when a
requirement of ``pyproject.toml`` (dependencies, the ``dev`` and ``bench`` extras, and the peers ``make install``
adds without their dependencies) has no line in the lock - a dependency added without ``make lock``.

``check_lock.py --write LOCK`` writes every distribution of the running environment except the project itself and
the installers (pip, setuptools, wheel) as ``name==version``, sorted, under a header saying how it was made.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "roitrack"
EXTRAS = ("dev", "bench")
INSTALLERS = {"pip", "setuptools", "wheel"}
# Installed by `make install` on top of the extras, without their dependencies (see the Makefile's NORFAIR).
EXTRA_PEERS = ("filterpy", "norfair")
HEADER = """\
# The locked versions of everything `make install` puts into .venv (the project's dependencies and its dev and
# bench extras), for Linux x86_64 and Python 3.11. pyproject.toml keeps the ranges; this file pins one resolution.
# Do not edit by hand: `make lock` refreshes it after a dependency change (locked versions stay, new packages are
# resolved); `make lock-upgrade` resolves everything afresh. Checked by scripts/check_lock.py (make install).
"""


def normalise(name: str) -> str:
    """PEP 503 name normalisation: ``Foo_Bar.baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of the ``name==version`` lines (comments and blank lines skipped)."""
    pins: dict[str, str] = {}
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if m is None:
            raise SystemExit(f"{path}:{n}: not a `name==version` line: {raw!r}")
        pins[normalise(m.group(1))] = m.group(2)
    return pins


def project_requirements(pyproject: Path) -> list[str]:
    """Normalised names of the project's dependencies, its ``dev``/``bench`` extras and the no-deps peers."""
    meta = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(meta.get("dependencies", []))
    for extra in EXTRAS:
        reqs += meta.get("optional-dependencies", {}).get(extra, [])
    names = [normalise(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", r).group(1)) for r in reqs]  # type: ignore[union-attr]
    return sorted(set(names) | set(EXTRA_PEERS))


def installed() -> dict[str, str]:
    """``{normalised name: version}`` of the running environment."""
    return {normalise(d.metadata["Name"]): d.version for d in md.distributions() if d.metadata["Name"]}


def check(lock: Path, pyproject: Path) -> list[str]:
    """Problems (empty when the environment matches the lock and the lock covers pyproject)."""
    pins, have = read_lock(lock), installed()
    problems = []
    for name, version in sorted(pins.items()):
        got = have.get(name)
        if got is None:
            problems.append(f"{name}=={version} is locked but not installed")
        elif got != version:
            problems.append(f"{name} {got} is installed, the lock says {version}")
    for name in project_requirements(pyproject):
        if name not in pins:
            problems.append(f"{name} (pyproject.toml) has no line in {lock.name}: run `make lock`")
    return problems


def write(lock: Path) -> int:
    have = installed()
    lines = [f"{n}=={v}" for n, v in sorted(have.items()) if n != PROJECT and n not in INSTALLERS]
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(HEADER + "\n".join(lines) + "\n")
    print(f"wrote {len(lines)} pins to {lock}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lock", type=Path, help="the lock file (requirements/lock.txt)")
    ap.add_argument("--write", action="store_true", help="write the lock from this environment")
    ap.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    args = ap.parse_args(argv)
    if args.write:
        return write(args.lock)
    problems = check(args.lock, args.pyproject)
    if problems:
        print(f"the environment does not match {args.lock}:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print(f"{len(read_lock(args.lock))} packages at their locked versions ({args.lock})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
