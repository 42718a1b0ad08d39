"""The language: text in, a checked program and plain-data answers out.

Lowest first: `source` and `diagnostics` (text, spans, the diagnostics model),
`filenames` (the rule for a program's file names), `syntax` (the grammar and the
lossless reader), `forms` (the tree lowered to definitions and expressions),
`types` and `signatures` (types as values, the built-in functions' types),
`resolve` (packages, requires, names), `check` (the type checker) and
`analysis` (the incremental `Workspace` that editors and the runtime share).
Nothing here runs a program, prints, or knows an editor protocol.
"""
