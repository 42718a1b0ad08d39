"""The `flowmetal` command line (SPEC section 6): a thin layer over the library.

Each command is a function taking the parsed arguments and returning the exit
status. Exit statuses: 0 success, 1 the command ran and found errors, 2 the
command could not run as asked (bad usage, a missing path). Errors of the
second kind are one line on stderr naming the problem, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from flowmetal import __version__


def _check(args: argparse.Namespace) -> int:
    # Imported here so that `flowmetal --version` and `--help` start instantly.
    from flowmetal import render
    from flowmetal.checking import PathError, check_paths

    try:
        result = check_paths(args.paths)
    except PathError as error:
        print(f"flowmetal check: error: {error}", file=sys.stderr)
        return 2
    diagnostics = sorted(result.diagnostics, key=lambda diag: diag.sort_key())
    if args.format == "json":
        json.dump([render.as_json(diag) for diag in diagnostics], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        for diag in diagnostics:
            print(render.human(diag))
        print(render.summary(diagnostics, len(result.files)), file=sys.stderr)
    return 1 if result.has_errors else 0


_SUMMARIES = {
    "check": "report the problems in Flowmetal files",
    "lsp": "run the language server (stdio, or --tcp PORT)",
}


def _lsp(args: argparse.Namespace) -> int:
    from flowmetal_lsp.server import main as serve
    return serve(tcp_port=args.tcp, host=args.host)


def _command_parsers() -> dict[str, argparse.ArgumentParser]:
    check = argparse.ArgumentParser(
        prog="flowmetal check",
        description="Read and check Flowmetal files; directories are searched for *.flow files. "
                    "Exits 1 when any error is found.")
    check.add_argument("paths", nargs="+", metavar="PATH", help="a .flow file or a directory")
    check.add_argument("--format", choices=("human", "json"), default="human",
                       help="human-readable (default) or a JSON list of diagnostics")
    check.set_defaults(run=_check)

    lsp = argparse.ArgumentParser(
        prog="flowmetal lsp",
        description="Run the Flowmetal language server. It speaks the Language Server Protocol on "
                    "stdin and stdout, or on a TCP port with --tcp.")
    lsp.add_argument("--tcp", type=int, metavar="PORT", help="listen on this TCP port instead of stdio")
    lsp.add_argument("--host", default="127.0.0.1", help="the address to listen on with --tcp (default 127.0.0.1)")
    lsp.set_defaults(run=_lsp)
    return {"check": check, "lsp": lsp}


def main(argv: list[str] | None = None) -> int:
    """Run one command. Options may stand before or after a command's positional
    arguments, so each command parses its own arguments, intermixed."""
    commands = _command_parsers()
    top = argparse.ArgumentParser(
        prog="flowmetal",
        description="Flowmetal: a durable, evented, asynchronous Lisp for coordination work.",
        epilog="commands:\n" + "\n".join(f"  {name:<10}{_SUMMARIES[name]}" for name in commands)
               + "\n\n'flowmetal COMMAND --help' describes a command's arguments.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"flowmetal {__version__}")
    top.add_argument("command", choices=sorted(commands), metavar="COMMAND")
    top.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parsed = top.parse_args(argv)
    args = commands[parsed.command].parse_intermixed_args(parsed.args)
    try:
        return args.run(args)
    except BrokenPipeError:  # `flowmetal check ... | head`
        return 0
    except KeyboardInterrupt:
        return 130
