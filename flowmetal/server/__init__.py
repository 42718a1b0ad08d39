"""`flowmetal serve`: the HTTP API, HTTP callbacks and the executor in one process.

- `flowmetal.server.app`: the aiohttp application (`make_app`): callbacks
  (`POST /callback/{token}`) and the JSON API under `/api/`.
- `flowmetal.server.addresses`: the `Host` and `Origin` a server answers to,
  and the addresses and public URLs it may run on.
- `flowmetal.server.jsonvalues`: Flowmetal values to plain JSON and back, the
  conversion connectors in other languages see.
- `flowmetal.server.openapi`: the OpenAPI document of the API (also
  `docs/openapi.json`).
- `flowmetal.server.serve`: the process: the application, the executor
  thread and the HTTP request connector, stopped cleanly by SIGINT/SIGTERM.

The server sits above the runtime: it imports `flowmetal.runtime`, never the
other way, so the runtime stays usable without aiohttp.
"""
