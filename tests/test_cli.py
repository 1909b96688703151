import re
import subprocess
import sys

import pytest

import kzoo


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "kzoo.cli", *args], capture_output=True, text=True
    )


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"kzoo {kzoo.__version__}"


def test_help_lists_usage():
    result = run_cli("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: kzoo")


def test_unknown_command_fails_with_message():
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_usage_and_help_list_every_command(capsys):
    from kzoo import cli

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    help_text = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert f"\n    kzoo {command} " in cli.__doc__, command
        assert re.search(rf"^\s+{command}\s+\S", help_text, flags=re.M), command
