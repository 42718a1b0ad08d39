"""Flowmetal: a durable, evented, asynchronous Lisp for coordination work.

The package is layered, each layer importing only those below it:

    flowmetal.lang        the language: text to a checked program (reader, forms, types, checker,
                          the incremental analysis)
    flowmetal.ide         editor features and formatting over the analysis (`ide.workbench`: runs
                          as an editor sees them, over the runtime and the server)
    flowmetal.runtime     the durable interpreter on its SQLite store
    flowmetal.connectors  endpoints performed outside the interpreter
    flowmetal.server      `flowmetal serve`: the HTTP API
    flowmetal.cli         the command line over all of them

`flowmetal/stdlib/` (the standard packages, Flowmetal source) and `flowmetal/grammar/`
(the grammar, installed from the top-level `grammar/`) are data. See docs/architecture.md
for the code map and its invariants.
"""

__version__ = "0.1.0"
