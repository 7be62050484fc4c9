"""The `interp` command as a user runs it: exit codes and one-line errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import zoo


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interp.cli", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("argv", [
    ["report", "--model", "nope", "--out", "unused"],
    ["dashboard", "--model", "nope"],
    ["zoo", "train", "nope"],
    ["zoo", "evaluate", "nope"],
])
def test_unknown_model_is_one_line_listing_valid_names(argv):
    r = run(*argv)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "'nope'" in lines[0] and all(n in lines[0] for n in zoo.names())
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_usage_errors_are_one_line():
    for argv in (["report", "--all"], ["zoo", "train"], ["frobnicate"], ["dashboard", "--port", "70000"],
                 ["dashboard", "--port", "-1"], ["zoo", "train", "mlp-cancer", "--epochs", "0"],
                 ["zoo", "train", "mlp-cancer", "--all"], ["report", "--model", "cnn-digits", "--all",
                                                           "--out", "unused"],
                 ["dashboard", "--no-zoo"],  # nothing left to show without a model of one's own
                 ["report", "--classes", "a,b", "--out", "unused"]):  # describes a --model-file not given
        r = run(*argv)
        assert r.returncode == 2, argv
        assert len(r.stderr.strip().splitlines()) == 1, (argv, r.stderr)
        assert "Traceback" not in r.stderr


def test_zoo_list_and_evaluate():
    r = run("zoo", "list")
    assert r.returncode == 0 and all(n in r.stdout for n in zoo.names())
    r = run("zoo", "evaluate", "mlp-cancer", "cnn-digits")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("matches card") == 2
    r = run("zoo", "evaluate", "mlp-cancer", "--json")  # the JSON alone: a program parses the whole output
    assert r.returncode == 0 and json.loads(r.stdout)["mlp-cancer"]["mismatches"] == []


@pytest.mark.slow
def test_evaluate_reports_a_card_that_lies(tmp_path):
    import json
    import shutil

    for p in (zoo.weights_path("mlp-cancer"), zoo.card_path("mlp-cancer")):
        shutil.copy(p, tmp_path / p.name)
    card = json.loads((tmp_path / "mlp-cancer.json").read_text())
    card["metrics"]["accuracy"] = 0.999
    (tmp_path / "mlp-cancer.json").write_text(json.dumps(card))
    r = run("zoo", "evaluate", "mlp-cancer", "--weights-dir", str(tmp_path))
    assert r.returncode == 1 and "DIFFERS FROM CARD" in r.stdout


def test_corrupt_weights_is_one_line(tmp_path):
    import shutil

    for p in (zoo.weights_path("mlp-cancer"), zoo.card_path("mlp-cancer")):
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "mlp-cancer.safetensors").write_bytes(b"\x00garbage")
    r = run("zoo", "evaluate", "mlp-cancer", "--weights-dir", str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "mlp-cancer.safetensors" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_train_cli_writes_into_a_folder(tmp_path):
    r = run("zoo", "train", "mlp-cancer", "--epochs", "2", "--weights-dir", str(tmp_path), "--quiet",
            "--keep-below-bar")  # 2 epochs may leave it below its bar, which is otherwise not saved
    assert r.returncode in (0, 1), r.stderr  # 1: trained, but below its quality bar after 2 epochs
    assert "Traceback" not in r.stderr
    assert (tmp_path / "mlp-cancer.safetensors").is_file() and (tmp_path / "mlp-cancer.json").is_file()
    assert "mlp-cancer" in r.stdout


def test_dashboard_on_a_busy_port_is_one_line():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("dashboard", "--port", str(port), timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert f"127.0.0.1:{port}" in r.stderr and "--port" in r.stderr
