"""The syntax layer: the grammar, the lossless tree and the reader.

`read(text, name)` returns a `Tree` (every node with its span) and the syntax
diagnostics; it never raises. Nothing here knows what a form means.
"""

from flowmetal.lang.syntax.reader import read, read_source
from flowmetal.lang.syntax.tree import Kind, Node, Seq, Token, Tree, print_tree, tokens, walk

__all__ = ["Kind", "Node", "Seq", "Token", "Tree", "print_tree", "read", "read_source", "tokens", "walk"]
