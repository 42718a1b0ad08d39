"""`flowmetal dap`: time-travel debugging of runs over the Debug Adapter Protocol.

- `wire`: the protocol's framing (`Content-Length` headers and JSON bodies), nothing else.
- `timeline`: a run replayed one evaluation step at a time, on `runtime.replay.Walk`, with
  positions that can be gone to in either direction (checkpoints every few thousand steps).
- `session`: the debugging logic over a timeline (launching, breakpoints, stepping, frames,
  variables, evaluation), in plain data; it knows nothing of JSON or DAP's messages.
- `adapter`: DAP's requests, responses and events over `session`, on stdio.
"""
