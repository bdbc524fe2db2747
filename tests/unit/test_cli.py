"""The one CLI: ``roitrack --help`` lists the commands, each command has ``--help``, errors exit 2."""

from __future__ import annotations

import argparse
import subprocess
import sys
import types

import pytest

from roitrack_cli import main as cli
from tracker_core.errors import WeightsError


def test_top_level_help_lists_every_installed_command():
    out = subprocess.run(
        [sys.executable, "-m", "roitrack_cli.main", "--help"], capture_output=True, text=True, check=True
    ).stdout
    installed = cli._available()
    assert "info" in installed
    for name in installed:
        assert name in out


@pytest.mark.parametrize("name", sorted(cli._available()))
def test_each_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: roitrack" in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "<command>" in capsys.readouterr().out


def test_unknown_command_is_rejected():
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2


def test_named_errors_become_exit_2_with_message(monkeypatch, capsys):
    fake = types.ModuleType("fake_cmd")

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--x")

    def run(args: argparse.Namespace) -> int:
        raise WeightsError("weights file /nope.safetensors does not exist")

    fake.configure = configure  # type: ignore[attr-defined]
    fake.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_cmd", "a fake command"))
    monkeypatch.setitem(sys.modules, "fake_cmd", fake)
    monkeypatch.setattr(cli, "_available", lambda: {"fake": ("fake_cmd", "a fake command")})
    assert cli.main(["fake"]) == 2
    err = capsys.readouterr().err
    assert "roitrack fake: error: weights file /nope.safetensors does not exist" in err


def test_info_json_reports_versions(capsys):
    assert cli.main(["info", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"torch": "2.14.1' in out
