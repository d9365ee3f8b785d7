"""Who a request came from when the console sits behind the centre's HTTPS proxy.

Behind a reverse proxy every connection comes from the proxy, so its address would stand for
every user: in the audit trail, in the sessions, and in the sign-in limit, where five mistyped
passwords anywhere in the centre would lock everyone out for five minutes. A proxy named as
trusted (``CITYORDER_CONSOLE_TRUSTED_PROXIES``) is believed about ``X-Forwarded-For``, to
which each proxy appends the address it was reached from; anyone else's header is ignored, so
a client cannot choose its own address.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address

Network = IPv4Network | IPv6Network


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool | None:
    """Whether ``address`` is a trusted proxy; None when it is no IP address at all."""
    try:
        ip = ip_address(address)
    except ValueError:
        return None
    return any(ip in net for net in proxies)


def client_address(peer: str | None, forwarded_for: str | None,
                   proxies: tuple[Network, ...]) -> str | None:
    """The address a request came from: the peer's, or, when the peer is a trusted proxy, the
    nearest one ``X-Forwarded-For`` names that is not (read from the right, as the proxies
    appended them; what lies left of it is the client's own word). If every entry is a trusted
    proxy, or the walk meets one that is no address, the last trusted hop read stands."""
    if not proxies or peer is None or not forwarded_for or not _trusted(peer, proxies):
        return peer
    nearest = peer
    for hop in reversed(forwarded_for.split(",")):
        hop = hop.strip()
        trusted = _trusted(hop, proxies)
        if trusted is None:
            break
        if not trusted:
            return hop
        nearest = hop
    return nearest
