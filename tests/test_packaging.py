"""The installed package: `pip install` of the wheel built from the tree gives every
package, the grammar and the standard packages inside it, a console script that
checks the examples from anywhere with no source checkout in sight, and a language
server that imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT


# What a clean checkout does not hold: a build here would also pack a stale `build/lib`
# (setuptools reuses it), modules of an older layout included.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "node_modules",
                                    ".pytest_cache", ".hypothesis", ".flowmetal", ".test-cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` builds, from a copy of the tree's sources."""
    source = tmp_path_factory.mktemp("source") / "flowmetal"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)],
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
    modules = {n for n in names if n.endswith(".py")}  # the tree's modules, no more, no fewer
    assert modules == {p.relative_to(ROOT).as_posix() for p in (ROOT / "flowmetal").rglob("*.py")} | {
        "flowmetal_lsp/" + p.relative_to(ROOT / "lsp").as_posix() for p in (ROOT / "lsp").rglob("*.py")}
    for module in ["flowmetal/lang/syntax/reader.py", "flowmetal/cli/commands.py", "flowmetal_lsp/__init__.py",
                   "flowmetal/runtime/machine.py", "flowmetal/server/app.py"]:
        assert module in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "flowmetal = flowmetal.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment (no system site-packages) where pip installed the wheel,
    as `pip install .` would: its files, its console script. The dependencies alone come
    from this environment (`environ`), so nothing is downloaded."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return venv


def environ(venv: Path) -> dict[str, str]:
    # This environment's site-packages, for the dependencies. PYTHONPATH comes before the venv's
    # site-packages on sys.path (its .pth files, such as an editable install's, are not read), so
    # the tests check that what they import is the wheel's copy.
    return {"PYTHONPATH": sysconfig.get_paths()["purelib"], "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def test_the_installed_wheel_checks_files_away_from_the_source(venv, tmp_path):
    (tmp_path / "p.flow").write_text("(defpackage p\n  (require [flowmetal.time :refer [sleep!]])\n"
                                     "  (defn f [] (sleep! [1 2))))\n")
    result = subprocess.run([str(venv / "bin" / "python"), "-c",
                             "import flowmetal.lang.syntax.grammar as g, sys; print(g.grammar_path()); "
                             "from flowmetal.cli import main; sys.exit(main(['check', 'p.flow']))"],
                            cwd=tmp_path, capture_output=True, text=True, env=environ(venv), timeout=120)
    assert result.returncode == 1, result.stderr
    grammar_path = Path(result.stdout.splitlines()[0])
    assert grammar_path.is_relative_to(site_packages(venv))
    # The standard packages came with the wheel: only the bracket is wrong.
    assert "p.flow:3:26: error: FM103: mismatched closing bracket" in result.stdout
    assert "FM303" not in result.stdout and "FM304" not in result.stdout


def test_the_installed_console_script_checks_the_examples(venv, tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    files = len(list((ROOT / "examples").glob("*.flow")))
    script = venv / "bin" / "flowmetal"
    assert script.is_file()
    for command in ([str(script)], [str(venv / "bin" / "python"), "-m", "flowmetal"]):
        result = subprocess.run([*command, "check", "examples"], cwd=tmp_path, capture_output=True, text=True,
                                env=environ(venv), timeout=120)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", f"no problems in {files} files\n"), command
    where = subprocess.run([str(script), "--version"], cwd=tmp_path, capture_output=True, text=True,
                           env=environ(venv), timeout=60)
    assert where.returncode == 0 and "0.1.0" in where.stdout


def test_the_installed_language_server_and_every_module_import(venv, tmp_path):
    """`flowmetal lsp`'s server and every module of the wheel import from the venv, not the tree."""
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for p in (ROOT / "flowmetal").rglob("*.py") if p.name != "__main__.py")
    code = ("import importlib, sys; import flowmetal_lsp.server as s; print(s.__file__); "
            f"[importlib.import_module(m) for m in {modules!r}]; "
            "print(*sorted({sys.modules[m].__file__.split('/site-packages/')[0] for m in "
            f"{modules!r}}}), sep='\\n')")
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, env=environ(venv), timeout=120)
    assert result.returncode == 0, result.stderr
    server, *roots = result.stdout.splitlines()
    assert Path(server).is_relative_to(site_packages(venv))
    assert roots == [str(venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}")]
