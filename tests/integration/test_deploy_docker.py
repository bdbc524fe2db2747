"""The Dockerfile, checked without a Docker engine.

- Its HEALTHCHECK, ENTRYPOINT and CMD name the installed ``roitrack`` console script and sub-commands whose modules
  import and whose parsers accept exactly those arguments.
- The runtime stage runs as a non-root user, exposes gRPC and metrics, and copies nothing but the built virtual
  environment (no source tree, no weights, no config).
- ``.dockerignore`` lets in what the build copies and keeps caches, venvs, data, runs and weights out; the wheel the
  build stage makes from exactly that context installs and runs with no source tree around.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from roitrack_cli import main as cli

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


# ------------------------------------------------------------------------------------------ Dockerfile parsing
@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped; ``stage`` counts FROMs (0-based)."""
    out: list[Instruction] = []
    stage = -1
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, args = buf.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(stage, keyword, args.strip(), start))
        buf = ""
    assert not buf, "Dockerfile ends inside a continued line"
    return out


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction (``["a", "b"]``); fails on shell form."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(x, str) for x in value), args
    return value


def healthcheck_cmd(args: str) -> list[str]:
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", args)
    assert m, f"HEALTHCHECK must use the exec form CMD [...]: {args}"
    return exec_form(m.group(1))


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    assert last >= 1, "the Dockerfile must be multi-stage (build + runtime)"
    return [i for i in instructions if i.stage == last]


def _one(instrs: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in instrs if i.keyword == keyword]
    assert found, f"no {keyword} in the runtime stage"
    return found[-1]  # the last one is the one Docker uses


# ---------------------------------------------------------------------------------- commands exist and parse
def assert_roitrack_invocation(argv: list[str]) -> None:
    """``argv`` = [roitrack, <command>, args...]: the script is ours, the command exists, its parser accepts args."""
    assert argv[0] == "roitrack", argv
    assert PYPROJECT["project"]["scripts"]["roitrack"] == "roitrack_cli.main:main"
    script = Path(sys.executable).parent / "roitrack"
    assert script.exists(), f"console script {script} is not installed"
    name = argv[1]
    assert name in cli.COMMANDS, f"{name!r} is not a roitrack command"
    module = cli.COMMANDS[name][0]
    importlib.import_module(module)  # the command's module imports (heavy imports live inside run())
    parser, loaded = cli.build_parser(load=name)
    assert name in loaded
    args = parser.parse_args(argv[1:])  # unknown flags -> SystemExit(2)
    assert args.command == name


def test_healthcheck_runs_roitrack_health(runtime):
    hc = _one(runtime, "HEALTHCHECK")
    for opt in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert opt in hc.args
    argv = healthcheck_cmd(hc.args)
    assert argv[:2] == ["roitrack", "health"]
    assert_roitrack_invocation(argv)
    timeout = float(argv[argv.index("--timeout") + 1])
    docker_timeout = float(re.search(r"--timeout=(\d+)s", hc.args).group(1))  # type: ignore[union-attr]
    assert timeout < docker_timeout, "the gRPC deadline must end before Docker kills the check"


def test_entrypoint_and_cmd_run_roitrack_serve(runtime):
    assert exec_form(_one(runtime, "ENTRYPOINT").args) == ["roitrack"]
    cmd = exec_form(_one(runtime, "CMD").args)
    assert cmd[0] == "serve"
    assert_roitrack_invocation(["roitrack", *cmd])


def test_invocation_check_rejects_what_does_not_exist():
    with pytest.raises(AssertionError):
        assert_roitrack_invocation(["roitrack", "helth"])
    with pytest.raises(SystemExit):
        assert_roitrack_invocation(["roitrack", "health", "--no-such-flag"])
    with pytest.raises(AssertionError):
        assert_roitrack_invocation(["roitrackd", "health"])


def test_runtime_stage_is_non_root_and_exposes_ports(runtime):
    user = _one(runtime, "USER").args.split(":")[0]
    assert user not in {"root", "0", ""}
    exposed = {p.split("/")[0] for i in runtime if i.keyword == "EXPOSE" for p in i.args.split()}
    assert {"50051", "9108"} <= exposed


def test_runtime_stage_copies_only_the_built_environment(runtime):
    copies = [i for i in runtime if i.keyword in {"COPY", "ADD"}]
    assert copies, "the runtime stage must copy the installed environment from the build stage"
    for c in copies:
        assert c.keyword == "COPY" and c.args.startswith("--from=build "), (
            f"line {c.line}: {c.keyword} {c.args}"
        )
    text = " ".join(i.args for i in runtime)
    for baked in (".safetensors", ".pt ", "roitrack.toml ", "deploy/"):
        assert baked not in text.replace("/etc/roitrack/roitrack.toml", ""), baked
    assert any(i.keyword == "VOLUME" and "/weights" in i.args for i in runtime)


def test_build_stage_copies_every_package_and_builds_a_wheel(instructions):
    build = [i for i in instructions if i.stage == 0]
    copied = {
        i.args.split()[0].rstrip("/") for i in build if i.keyword == "COPY" and not i.args.startswith("--")
    }
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include if (REPO / p.rstrip("*")).is_dir()}
    assert packages, include
    assert packages <= copied, f"packages not copied into the build stage: {sorted(packages - copied)}"
    runs = " ".join(i.args for i in build if i.keyword == "RUN")
    assert "pip wheel" in runs and "/wheels/roitrack-" in runs
    assert "pip install -e" not in runs and "--editable" not in runs


def test_base_image_matches_python_and_torch_cuda():
    import torch

    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    images = [base.group(1) if base and f == "${PYTHON_IMAGE}" else f for f in froms]
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    for image in images:
        if image.startswith("python:"):
            assert image.split(":")[1].startswith("3.11"), image
        m = re.match(r"nvidia/cuda:(\d+\.\d+)", image)
        if m:  # a CUDA base must be the CUDA torch was built for
            assert m.group(1) == torch.version.cuda, (image, torch.version.cuda)
    pin = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch==")]
    assert pin == [f"torch=={torch.__version__.split('+')[0]}"]
    assert torch.version.cuda is not None and torch.version.cuda.startswith("13."), (
        "the PyPI torch wheel is expected to be the cu130 build that brings its own CUDA libraries"
    )


# ------------------------------------------------------------------------------------------------ .dockerignore
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_excludes(rules_text: str, path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    rules = []
    for raw in rules_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = line[1:] if neg else line
        pat = pat.strip().strip("/") or "."
        rules.append((neg, _pattern_regex(pat)))
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: k + 1]) for k in range(len(parts))]
    excluded = False
    for neg, rx in rules:
        if any(rx.match(c) for c in candidates):
            excluded = not neg
    return excluded


def test_dockerignore_matcher_semantics():
    rules = "*\n!src/\n**/__pycache__\n"
    assert dockerignore_excludes(rules, "data/x.jpg")
    assert not dockerignore_excludes(rules, "src/a.py")
    assert dockerignore_excludes(rules, "src/__pycache__/a.pyc")


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if (REPO / f).is_file()]


def test_dockerignore_lets_in_everything_the_build_needs(instructions):
    rules = DOCKERIGNORE.read_text()
    sources = [i.args.split()[0] for i in instructions if i.keyword == "COPY" and not i.args.startswith("--")]
    for src in sources:
        assert not dockerignore_excludes(rules, src.rstrip("/")), f"COPY {src} is excluded by .dockerignore"
    packages = {s.rstrip("/") for s in sources if (REPO / s).is_dir()}
    needed = [f for f in _tracked_files() if f.split("/")[0] in packages]
    assert needed
    dropped = [f for f in needed if dockerignore_excludes(rules, f)]
    assert dropped == [], f"tracked package files the image would miss: {dropped}"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "tracker_core/__pycache__/letterbox.cpython-311.pyc",
        ".pytest_cache/v/cache",
        ".mypy_cache/3.11/x.json",
        "roitrack.egg-info/PKG-INFO",
        "data/PETS09/img1/000001.jpg",
        "runs/exp1/encoder.safetensors",
        "weights/yolov7.safetensors",
        "server/weights/yolov7.pt",
        "training/runs/x.npz",
        "tests/unit/test_cli.py",
        "deploy/config/roitrack.toml",
        "build/lib/x.py",
        "demo_out/annotated.mp4",
    ],
)
def test_dockerignore_keeps_junk_out(path):
    assert dockerignore_excludes(DOCKERIGNORE.read_text(), path)


def test_wheel_from_the_docker_context_runs_without_a_source_tree(tmp_path, instructions):
    """What the build stage does, on the files Docker would send: build the wheel, install it, run the health
    command from an unrelated folder with nothing but the installed files importable."""
    rules = DOCKERIGNORE.read_text()
    context = tmp_path / "context"
    for f in _tracked_files():
        if not dockerignore_excludes(rules, f):
            (context / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, context / f)
    assert (context / "pyproject.toml").exists()
    wheels, target, cwd = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    cwd.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(context)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = wheels.glob("roitrack-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(target)
    probe = (
        "import sys, roitrack_cli.main as m, client.health as h, roitrack_cli.commands.health as c\n"
        f"assert m.__file__.startswith({str(target)!r}), m.__file__\n"
        f"assert h.__file__.startswith({str(target)!r}), h.__file__\n"
        "sys.exit(m.main(['health', '--help']))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert "--server" in res.stdout and "--tls-ca" in res.stdout
    installed = {p.relative_to(target).as_posix() for p in target.rglob("*.py")}
    for pkg in ("tracker_core", "server", "client", "training", "roitrack_cli"):
        assert f"{pkg}/__init__.py" in installed, pkg
    assert not any(p.startswith("tests/") for p in installed)


def test_image_for_cpu_hosts_includes_openvino():
    """The build installs the extras named by ROITRACK_EXTRAS (default openvino: the fast CPU backend), read from
    pyproject.toml by the same command the Dockerfile runs."""
    text = DOCKERFILE.read_text()
    default = re.search(r"^ARG ROITRACK_EXTRAS=(\S*)", text, re.M)
    assert default and "openvino" in default.group(1).split(",")
    assert "openvino" in PYPROJECT["project"]["optional-dependencies"]
    build = [i for i in parse_dockerfile(text) if i.stage == 0]
    assert any(i.keyword == "ARG" and i.args == "ROITRACK_EXTRAS" for i in build), (
        "the build stage must see the ARG"
    )
    run = next(i.args for i in build if i.keyword == "RUN" and "requirements.txt" in i.args)
    script = run[: run.index("> /tmp/requirements.txt")]
    for extras, want in (
        ("openvino", {"openvino>=2025.0", "onnx>=1.16"}),
        ("", set()),
        (default.group(1), None),
    ):
        env = {**os.environ, "ROITRACK_EXTRAS": extras}
        res = subprocess.run(
            ["bash", "-c", script.replace("python ", f"{sys.executable} ", 1)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        reqs = set(res.stdout.split())
        assert set(PYPROJECT["project"]["dependencies"]) <= reqs
        if want is None:  # the default: every named extra's requirements
            want = {d for e in extras.split(",") for d in PYPROJECT["project"]["optional-dependencies"][e]}
        assert reqs - set(PYPROJECT["project"]["dependencies"]) == want, extras
    runtime_env = " ".join(i.args for i in parse_dockerfile(text) if i.keyword == "ENV")
    assert "OMP_WAIT_POLICY=PASSIVE" in runtime_env
