"""Flowmetal: a durable, evented, asynchronous Lisp for coordination work.

The package is layered, each layer importing only those below it:

    flowmetal.source, flowmetal.diagnostics   text, spans and the diagnostics model
    flowmetal.syntax                          the grammar and the lossless reader
    flowmetal.cli                             the command line over all of them

See docs/architecture.md for the code map and its invariants.
"""

__version__ = "0.1.0"
