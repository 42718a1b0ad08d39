"""What an editor needs, in plain data: no editor protocol here (that is `lsp/`).

`features` (hover, completion, rename, outline, code actions and the rest) and
`format` (the canonical layout) work over the language's analysis alone;
`workbench` (a workspace's runs as an editor sees them) works over the runtime
and the server, so it sits above them in the layers.
"""
