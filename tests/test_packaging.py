"""The installed package: the grammar ships inside it, and the console script works
from anywhere, with no source checkout in sight."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (path,) = out.glob("flowmetal-*.whl")
    return path


def test_the_wheel_holds_one_grammar_and_every_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if n.endswith(".peg")] == ["flowmetal/grammar/flowmetal.peg"]
    grammar = zipfile.ZipFile(wheel).read("flowmetal/grammar/flowmetal.peg").decode()
    assert grammar == (ROOT / "grammar" / "flowmetal.peg").read_text(encoding="utf-8")
    assert "flowmetal/stdlib/flowmetal.time.flow" in names and "flowmetal/stdlib/http.request.flow" in names
    packages = sorted(str(p.parent.relative_to(ROOT)) for p in (ROOT / "flowmetal").rglob("__init__.py"))
    for package in packages:  # every package of the source tree is in the wheel
        assert f"{package}/__init__.py" in names, package
    for module in ["flowmetal/lang/syntax/reader.py", "flowmetal/cli/commands.py", "flowmetal_lsp/__init__.py",
                   "flowmetal/runtime/machine.py", "flowmetal/server/app.py"]:
        assert module in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "flowmetal = flowmetal.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_installed_wheel_checks_files_away_from_the_source(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    target = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    # Install the wheel alone; its dependencies come from this environment.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    (tmp_path / "p.flow").write_text("(defpackage p\n  (require [flowmetal.time :refer [sleep!]])\n"
                                     "  (defn f [] (sleep! [1 2))))\n")
    env = {"PYTHONPATH": sysconfig.get_paths()["purelib"], "PATH": "/usr/bin:/bin"}
    result = subprocess.run([str(venv / "bin" / "python"), "-c",
                             "import flowmetal.lang.syntax.grammar as g, sys; print(g.grammar_path()); "
                             "from flowmetal.cli import main; sys.exit(main(['check', 'p.flow']))"],
                            cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    grammar_path = Path(result.stdout.splitlines()[0])
    assert grammar_path.is_relative_to(target)
    # The standard packages came with the wheel: only the bracket is wrong.
    assert "p.flow:3:26: error: FM103: mismatched closing bracket" in result.stdout
    assert "FM303" not in result.stdout and "FM304" not in result.stdout
