"""Requests to addresses that users type in (webhooks): never into the network DataMind runs in.

A webhook URL is chosen by an org's analyst, but the request leaves from our servers, which can
reach what the analyst cannot: the database, Redis, the cloud's metadata service. So the host is
resolved here, every address it resolves to is checked, and the request is sent to the checked
address (the name kept for the Host header and TLS), so a name cannot resolve to a public address
when checked and a private one when used.
"""

import ipaddress
import socket

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedAddress(ValueError):
    """The host is, or resolves to, an address requests from our servers must not reach."""


def address_refusal(address: Address, *, allow_private: bool) -> str:
    """Why a request must not go to `address`, or "" when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        return f"{address} is a link-local, multicast or unspecified address (cloud metadata lives there)"
    if not allow_private and not address.is_global:
        return f"{address} is a private, loopback or reserved address"
    return ""


def literal_refusal(host: str, *, allow_private: bool) -> str:
    """For a host typed as an IP address (or "localhost"), why it is refused, before any lookup."""
    if host.lower().rstrip(".") in {"localhost", "localhost.localdomain"} and not allow_private:
        return "localhost is this server"
    try:
        return address_refusal(ipaddress.ip_address(host), allow_private=allow_private)
    except ValueError:
        return ""


def resolve_allowed(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to for `host`: refused if any address it resolves to is refused.

    Raises RefusedAddress, or socket.gaierror when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        if reason := address_refusal(address, allow_private=allow_private):
            raise RefusedAddress(reason)
    return str(addresses[0])
