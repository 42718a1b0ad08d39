"""The Flowmetal language server (`flowmetal lsp`), installed as `flowmetal_lsp`.

The only part of the project that speaks the Language Server Protocol: thin
handlers over the analysis API in `flowmetal`, built on pygls and lsprotocol.
Positions are converted between the protocol's UTF-16 columns and Flowmetal's
code-point offsets here and nowhere else. Nothing in `flowmetal` imports this
package, pygls or lsprotocol (a test walks the imports to keep it so).
"""
