"""Which store a server on a port serves: so that a process that finds the port of the
store's public URL taken can tell a server of its own store from anything else.

Callback URLs are built on the store's public URL (`SQLiteStore.public_url`), one
setting of the whole deployment, so any callback server that serves the store can
take them. When `flowmetal run` finds that port held, the holder is either such a
server (a `flowmetal serve`, or another `flowmetal run`, on the same store: callbacks
reach the store through it, which is all a run needs) or something else, to which
callbacks would be lost.

Every answer of a Flowmetal server carries `Flowmetal-Store: <store id>` (`identify`),
the random id kept in the store's settings. `holder` sends one `HEAD` request for the
OpenAPI document, through no proxy, with a short timeout, and reads that header; it
sends nothing else, and nothing at all to a port nobody listens on.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

HEADER = "Flowmetal-Store"
PROBE_TIMEOUT = 3.0  # seconds for the holder of a port to answer


def identify(app, store_id: str | None) -> None:
    """Make every answer of the aiohttp application `app` say which store it serves."""
    if not store_id:
        return

    async def say(request, response) -> None:
        response.headers[HEADER] = store_id
    app.on_response_prepare.append(say)


def listening(host: str, port: int) -> bool:
    """Whether something accepts connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
            return True
    except OSError:
        return False


def holder(host: str, port: int) -> str | None:
    """The store id a server on `host:port` says it serves, or None: nothing answers there
    as a Flowmetal server does (no HTTP, no header, no answer in time)."""
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url + "/api/openapi.json", method="HEAD")
    try:
        with opener.open(request, timeout=PROBE_TIMEOUT) as answer:
            return answer.headers.get(HEADER)
    except urllib.error.HTTPError as answer:  # a token is needed: the header is there all the same
        return answer.headers.get(HEADER)
    except (OSError, ValueError):
        return None
