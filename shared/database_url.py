"""The PostgreSQL URL forms ALCHEMISER_DATABASE_URL takes with several hosts: libpq's
`postgresql://USER@H1:P1,H2:P2/DB?target_session_attrs=read-write`, rewritten into the form
SQLAlchemy's asyncpg dialect takes (`...@/DB?host=H1:P1&host=H2:P2&...`), which both the
engine and the store's own asyncpg connections are built from. The services write on every
connection, so a URL with several hosts must say to connect to the one that accepts writes
(docs/operations.md, PostgreSQL high availability)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

DEFAULT_PORT = 5432
"""libpq's default, for a host of a multi-host URL written without a port."""
SESSION_ATTRIBUTES = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")
"""asyncpg's values of `target_session_attrs`."""
WRITABLE_SESSION_ATTRIBUTES = ("read-write", "primary")
EXAMPLE = "postgresql://USER:PASSWORD@HOST1:5432,HOST2:5432/DB?target_session_attrs=read-write"


def hosts_in_query(url: str) -> str:
    """A `postgresql+asyncpg://` URL with its hosts as the dialect takes several: each a `host`
    query parameter with its port (libpq's default when the URL leaves it out). A URL with one
    host is returned unchanged. Raises ValueError naming what is wrong: an empty host, a bad
    port, a `target_session_attrs` asyncpg does not know, or several hosts without a session
    attribute that picks the writable one."""
    parts = urlsplit(url)
    userinfo, at, authority = parts.netloc.rpartition("@")
    query = parse_qsl(parts.query, keep_blank_values=True)
    netloc = parts.netloc
    if "," in authority:
        query = [("host", host) for host in authority.split(",")] + query
        netloc = f"{userinfo}{at}"
    hosts = [host for name, value in query if name == "host" for host in value.split(",")]
    others = [(name, value) for name, value in query if name != "host"]
    attributes = [value for name, value in others if name == "target_session_attrs"]
    for attribute in attributes:
        if attribute not in SESSION_ATTRIBUTES:
            raise ValueError(
                f"target_session_attrs={attribute} is not one of {', '.join(SESSION_ATTRIBUTES)}; "
                f"with several hosts write read-write, as in {EXAMPLE}"
            )
    if len(hosts) < 2:
        return url
    if any(name == "port" for name, _ in others):
        raise ValueError(f"give each of several hosts its port as HOST:PORT; write {EXAMPLE}")
    if not attributes or attributes[-1] not in WRITABLE_SESSION_ATTRIBUTES:
        raise ValueError(
            f"lists {len(hosts)} hosts but not target_session_attrs=read-write, so a service "
            f"could connect to a read-only standby; write {EXAMPLE}"
        )
    query = [("host", _host_and_port(host)) for host in hosts] + others
    # Not `geturl()`: it drops the `//` of an empty authority, which SQLAlchemy needs.
    return f"{parts.scheme}://{netloc}{parts.path}?{urlencode(query, safe=':/')}"


def _host_and_port(host: str) -> str:
    """`host:port` of one entry of a multi-host URL, with libpq's default port."""
    if host.startswith("["):
        raise ValueError(
            f"host {host!r}: a multi-host URL takes host names or IPv4 addresses, not IPv6; "
            f"write {EXAMPLE}"
        )
    name, colon, port = host.partition(":")
    if not name:
        raise ValueError(f"an empty host in a multi-host URL ({host!r}); write {EXAMPLE}")
    if not colon:
        return f"{name}:{DEFAULT_PORT}"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"host {host!r}: the port must be a number from 1 to 65535")
    return f"{name}:{int(port)}"
