"""Outbound webhooks that reach only the public internet, each within a wall-clock deadline.

A tenant chooses the URL, so it is hostile input: it may name our own network (the instance
metadata service, the Lambda Runtime API on 127.0.0.1:9001, a VPC neighbour) directly, in a
disguised numeric form (``0xa9fea9fe``, ``2852039166``, octal, IPv4-mapped IPv6), or through a name
that resolves there, now or later (DNS rebinding). So a target is checked twice: when the alert is
saved, and when we connect, where the address we checked is the address we connect to (the
request goes to that IP, the TLS certificate is still checked against the host name). Redirects
are never followed, credentials in the URL are refused, and what a tenant is told of a failure is
what it can act on (its receiver's status code, or no answer in time), never which network error
it was: that would make the deliveries a port scanner.

A receiver that answers a byte at a time cannot hold a delivery past its deadline: a timer shuts
the socket down when the deadline passes, whatever the socket is waiting for.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from meter.core.caches import memoized

LOCAL_HOSTS = ("127.0.0.1", "localhost")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookRefused(ValueError):
    """A webhook URL we will not send to; the message says why, for the tenant."""


class DeliveryFailed(RuntimeError):
    """A delivery that did not get a 2xx; the message is safe to show the tenant."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True)
class Target:
    """Where a webhook goes: the URL's parts and the checked address to connect to."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour:
        return address.sixtofour
    return address.teredo[1] if address.teredo else None


def is_public(address: Address) -> bool:
    """True for an address on the public internet: not loopback, private, link-local, CGNAT,
    unique-local, multicast, reserved or unspecified, nor an IPv6 form carrying such an IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and not is_public(inner):
            return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def _resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` names (numeric forms such as ``0xa9fea9fe`` included, as the C
    library reads them); WebhookRefused if it names none."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise WebhookRefused(f"host '{host}' does not resolve") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]


def target_of(url: str, allow_local: bool) -> Target:
    """The checked target of ``url``: https to a host whose every address is public, or (only
    when ``allow_local``, as under ``make run``) http to 127.0.0.1 / localhost."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookRefused("must be a valid URL") from None
    host = (parts.hostname or "").rstrip(".")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("must not carry credentials (user:password@); authenticate with the signature")
    local = allow_local and parts.scheme == "http" and host in LOCAL_HOSTS
    if not host or not (parts.scheme == "https" or local):
        raise WebhookRefused("must be an https:// URL")
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not local and not all(is_public(address) for address in addresses):
        raise WebhookRefused("must be on the public internet (its host resolves to a private or reserved address)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, str(addresses[0]))


def check_url(url: str, allow_local: bool) -> str:
    """``url`` if we would send to it (pydantic validators call this); ValueError otherwise."""
    target_of(url, allow_local)
    return url


@memoized(1)
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class _PinnedConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, the certificate verified against the URL's host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=_tls())
        self._target = target

    def connect(self) -> None:
        raw = socket.create_connection((self._target.address, self._target.port), self.timeout)
        self.sock = _tls().wrap_socket(raw, server_hostname=self._target.host)


class _PinnedPlainConnection(http.client.HTTPConnection):
    """HTTP to a checked local address (``make run`` only)."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._target = target

    def connect(self) -> None:
        self.sock = socket.create_connection((self._target.address, self._target.port), self.timeout)


def _abort(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def post(url: str, payload: bytes, headers: dict[str, str], deadline_seconds: float, allow_local: bool) -> int:
    """POST ``payload`` to ``url`` and return the 2xx status; DeliveryFailed otherwise. The whole
    exchange (resolving, connecting, TLS, sending, the answer's head and first KB) ends by the deadline."""
    try:
        target = target_of(url, allow_local)
    except WebhookRefused as refused:
        raise DeliveryFailed(f"webhook URL refused: {refused}") from None
    kind = _PinnedConnection if target.scheme == "https" else _PinnedPlainConnection
    connection = kind(target, timeout=deadline_seconds)
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        _abort(connection)

    timer = threading.Timer(deadline_seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        connection.request("POST", target.path, body=payload, headers=headers)
        answer = connection.getresponse()
        answer.read(1024)
        status = answer.status
    except (OSError, http.client.HTTPException, ValueError):
        # which error it was (refused, reset, TLS, timeout) is a fact about a network, not for tenants
        raise DeliveryFailed(f"no HTTP answer from the webhook within {deadline_seconds:g} s", True) from None
    finally:
        timer.cancel()
        connection.close()
    if expired.is_set():
        raise DeliveryFailed(f"no HTTP answer from the webhook within {deadline_seconds:g} s", True)
    if 300 <= status < 400:
        raise DeliveryFailed(f"webhook answered HTTP {status}; redirects are not followed")
    if not 200 <= status < 300:
        raise DeliveryFailed(f"webhook answered HTTP {status}")
    return status
