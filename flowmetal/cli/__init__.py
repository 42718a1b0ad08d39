"""The `flowmetal` command line: `commands` parses the arguments and runs each command
over the library; `check_command` is `flowmetal check`; `render` prints diagnostics;
`run_output` prints runs (the live status of `run`, the log of `trace`); `terminal`
makes text from programs and runs inert for a terminal.

`main` is the console script's entry point (`flowmetal = flowmetal.cli:main`).
"""

from flowmetal.cli.commands import main

__all__ = ["main"]
