"""The addresses `flowmetal serve` answers to, and those it refuses to run on.

A server on 127.0.0.1 without a token is reachable by every web page the
user's browser opens: a page can send it requests (CSRF), and a page whose
name its attacker re-points at 127.0.0.1 (DNS rebinding) can even read the
answers. Browsers always say where a request comes from and whom it is for,
so the server checks that:

- `Host` must name the server: the address the connection arrived at (any
  loopback name, `localhost`, `127.0.0.1` or `[::1]`, when it arrived on a
  loopback address), the name it was told to listen on, or the public URL's
  host, with the port it was reached on. A rebinding page's requests carry
  the attacker's name and are refused (`Served.host_ok`).
- `Origin`, when present, must be the server's own origin (`http://` and a
  host as above) or the public URL's. Programs (curl, connectors, editors)
  send no `Origin`; a web page always does (`Served.origin_ok`).

The address a connection arrived at is read from its socket, so the checks
hold for any port, port 0 included, and on a wildcard bind (`0.0.0.0`,
where the address is the one the client used).

And, before listening: a non-loopback address needs a token
(`needs_token`), a wildcard address a public URL for callback URLs
(`is_wildcard`), and a public URL must be an absolute http(s) URL naming a
concrete host (`check_public_url`), so that callback URLs never say
`0.0.0.0`.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

WILDCARDS = ("", "0.0.0.0", "::", "*")
DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_TEXT = re.compile(r"^[A-Za-z0-9._~\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+(%[A-Za-z0-9]+)?\](:[0-9]{1,5})?$")


class AddressError(ValueError):
    """An address or URL that cannot be used as given: the message names it and the fix."""


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address `text` is a literal of (IPv4-mapped IPv6 as IPv4), else None."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0].strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_wildcard(host: str | None) -> bool:
    """`host` listens on every address of the machine."""
    if host is None or host.strip() in WILDCARDS:
        return True
    address = _ip(host)
    return address is not None and address.is_unspecified


def is_loopback(host: str | None) -> bool:
    """`host` is `localhost` or a loopback address literal (127.0.0.0/8, ::1)."""
    if host is None:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    address = _ip(host)
    return address is not None and address.is_loopback


def needs_token(host: str | None) -> bool:
    """Listening on `host` without a token would open the API to other machines."""
    return not is_loopback(host)


def url_of(host: str, port: int) -> str:
    """`http://HOST:PORT`, an IPv6 address in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_public_url(url: str) -> str:
    """The public URL callback URLs are built on, without a trailing slash; AddressError
    when it is not an absolute http(s) URL naming a concrete host."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # a malformed port raises here
    except ValueError as error:
        raise AddressError(f"the public URL `{url}` is not a URL: {error}") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise AddressError(f"the public URL `{url}` must be an absolute http:// or https:// URL, "
                           f"as `http://flows.example.com:8700`")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise AddressError(f"the public URL `{url}` must have no user, query or fragment")
    if is_wildcard(parts.hostname):
        raise AddressError(f"the public URL `{url}` names no machine ({parts.hostname} means every "
                           f"address): give the name or address callers reach this server at")
    return text.rstrip("/")


def _host_port(text: str, default_port: int) -> tuple[str, int] | None:
    """(host, port) of a `Host` header value (`name`, `name:port`, `[v6]:port`), else None."""
    if not _HOST_TEXT.match(text):
        return None
    try:
        parts = urlsplit("//" + text)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port if port is not None else default_port


class Served:
    """What a server answers to: the host it was told to listen on and its public URL."""

    def __init__(self, bind_host: str | None = None, public_url: str | None = None) -> None:
        self.bind_host = None if bind_host is None or is_wildcard(bind_host) else bind_host.lower().strip("[]")
        self.public: tuple[str, str, int] | None = None
        if public_url:
            parts = urlsplit(public_url)
            if parts.scheme in DEFAULT_PORTS and parts.hostname:
                self.public = (parts.scheme, parts.hostname.lower(),
                               parts.port if parts.port is not None else DEFAULT_PORTS[parts.scheme])

    def _is_served(self, host: str, port: int, local: tuple | None) -> bool:
        """`host:port` names the address the connection arrived at (`local`, its socket's)."""
        if local is None or port != local[1]:
            return False
        arrived, named = _ip(str(local[0])), _ip(host)
        if arrived is not None and named is not None and arrived == named:
            return True
        if arrived is not None and arrived.is_loopback and is_loopback(host):
            return True
        return self.bind_host is not None and host == self.bind_host

    def host_ok(self, value: str | None, local: tuple | None) -> bool:
        if value is None:  # HTTP/1.0: no browser sends a request without Host
            return True
        if self.public is not None:
            found = _host_port(value, self.public[2])
            if found is not None and found == self.public[1:]:
                return True
        found = _host_port(value, 80)
        return found is not None and self._is_served(found[0], found[1], local)

    def origin_ok(self, value: str, local: tuple | None) -> bool:
        try:
            parts = urlsplit(value.strip())
            port = parts.port
        except ValueError:
            return False
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query:
            return False
        port = port if port is not None else DEFAULT_PORTS[parts.scheme]
        if self.public is not None and (parts.scheme, parts.hostname.lower(), port) == self.public:
            return True
        return parts.scheme == "http" and self._is_served(parts.hostname.lower(), port, local)

    def describe(self, local: tuple | None) -> str:
        """The origins this server answers to, for error messages."""
        names = []
        if local is not None:
            arrived = _ip(str(local[0]))
            if arrived is not None and arrived.is_loopback:
                names += [url_of(h, local[1]) for h in ("127.0.0.1", "localhost", "::1")]
            else:
                names.append(url_of(str(arrived or local[0]), local[1]))
            if self.bind_host and not is_loopback(self.bind_host):
                names.append(url_of(self.bind_host, local[1]))
        if self.public is not None:
            scheme, host, port = self.public
            names.append(f"{scheme}://{'[' + host + ']' if ':' in host else host}"
                         + ("" if DEFAULT_PORTS[scheme] == port else f":{port}"))
        return ", ".join(dict.fromkeys(names)) or "its own address"
