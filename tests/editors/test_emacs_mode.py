"""Runs the ERT tests of the Emacs mode (editors/emacs/flowmetal-mode.el) in real Emacs.

The mode holds no language logic (the `flowmetal lsp` server does all
parsing and checking), so the ERT file checks only the editing layer:
file association, syntax table, highlighting, indentation,
byte-compilation and the eglot registration, and the run and trace
buffers' behaviour that needs no server (windows, keys, the summary).

The package itself: package-lint, checkdoc and the byte compiler with
warnings as errors (tests/editors/package-check.el), and the installation
the README gives for Emacs 28: `package-install-file` into a fresh
package directory, after which a fresh Emacs opens `.flow` files in
`flowmetal-mode` with the server registered.

Without an `emacs` binary the test is skipped, except in CI (CI=true),
where a missing editor is a failure.
"""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODE = pathlib.Path("editors/emacs/flowmetal-mode.el")
ERT = pathlib.Path("tests/editors/flowmetal-mode-test.el")
EGLOT_LOAD = pathlib.Path("tests/editors/eglot-load.el")
PACKAGE_CHECK = pathlib.Path("tests/editors/package-check.el")
# The mode requires eglot: Emacs 28 finds Debian's elpa-eglot once its packages are activated.
WITH_EGLOT = ["-l", str(EGLOT_LOAD), "--eval",
              "(unless (flowmetal-test-load-eglot) (error \"eglot is not available (apt-get install -y elpa-eglot)\"))"]


def _require_tool(name):
    path = shutil.which(name)
    if path is None:
        message = f"`{name}` is not installed (apt-get install -y emacs-nox elpa-eglot)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _env(tmp_path):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return dict(
        os.environ,
        HOME=str(home),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )


def test_emacs_mode_ert(tmp_path):
    emacs = _require_tool("emacs")
    env = _env(tmp_path)
    result = subprocess.run(
        [emacs, "--batch", "-Q", *WITH_EGLOT, "-l", str(MODE), "-l", str(ERT),
         "-f", "ert-run-tests-batch-and-exit"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    ran = re.search(r"Ran (\d+) tests, (\d+) results as expected, (\d+) unexpected", output)
    assert ran, output
    assert int(ran.group(1)) >= 10, output
    assert ran.group(3) == "0", output


def test_the_package_is_lint_checkdoc_and_compiler_clean(tmp_path):
    emacs = _require_tool("emacs")
    copy = tmp_path / "pkg" / "flowmetal-mode.el"  # compiled beside itself: not in the source tree
    copy.parent.mkdir()
    shutil.copy(ROOT / MODE, copy)
    result = subprocess.run([emacs, "--batch", "-Q", "-l", str(PACKAGE_CHECK), str(copy)],
                            cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    if "package-lint is not installed" in output and os.environ.get("CI") != "true":
        pytest.skip("package-lint is not installed (apt-get install -y elpa-package-lint)")
    assert result.returncode == 0, output
    assert "0 problems" in output, output


def test_the_readme_installation_for_emacs_28(tmp_path):
    """What the README says: `package-install-file` on the file, then `.flow` files open in the mode."""
    emacs = _require_tool("emacs")
    env = _env(tmp_path)
    elpa = tmp_path / "elpa"
    system = ('(setq package-user-dir "%s" package-directory-list '
              '(append package-directory-list (list "/usr/share/emacs/site-lisp/elpa")))' % elpa)
    install = subprocess.run(
        [emacs, "--batch", "-Q", "--eval", system, "--eval", "(package-initialize)",
         "--eval", f'(package-install-file "{ROOT / MODE}")'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stdout + install.stderr
    assert list(elpa.glob("flowmetal-mode-0.1.0/flowmetal-mode-autoloads.el")), install.stderr
    (tmp_path / "hello.flow").write_text("(defpackage hello\n  (defn main [] : int? 1))\n", encoding="utf-8")
    check = subprocess.run(
        [emacs, "--batch", "-Q", "--eval", system, "--eval", "(package-initialize)",
         "--eval", '(find-file "hello.flow")',
         "--eval", '(princ (format "mode=%s server=%S\n" major-mode '
                   '(alist-get (quote flowmetal-mode) eglot-server-programs)))'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    output = check.stdout + check.stderr
    assert check.returncode == 0, output
    assert 'mode=flowmetal-mode server=("flowmetal" "lsp" :initializationOptions ' \
           'flowmetal-initialization-options)' in output, output
