"""What the API trusts about a request it did not see leave the client: the client's
address behind proxies, and the site a browser's form was posted from.

- :class:`TrustedProxies` (ASGI middleware): the client address is the peer's, unless
  the peer is one of ``INVOICER_TRUSTED_PROXIES``; then it is the right-most address
  of ``X-Forwarded-For`` that is not itself a trusted proxy. With no proxy configured
  (the default) the header is ignored, so no client can pick its own address and
  escape the per-address rate limits by rotating it.
- :func:`same_origin`: a cookie-authenticated form POST must come from the service's
  own pages (``Origin``, else ``Sec-Fetch-Site``), on top of the cookie's
  ``SameSite=Strict``: a cross-site POST (login CSRF included) is refused.
- :class:`AllowedMethods`: ``OPTIONS`` answers ``204`` with ``Allow`` listing every
  method of the path (a path served by several routes, ``GET`` and ``PUT`` of a
  payment status, listed all of them), and a ``405`` carries the same list.
- :class:`Deferred`: work done after the answer, off the request's connection (the SMS
  of an access code): a bounded queue and a few threads, so a slow gateway delays no
  later request on the same keep-alive connection (that delay told which numbers are
  subscribers').
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AllowedMethods", "Deferred", "TrustedProxies", "parse_networks",
           "require_same_origin", "same_origin"]

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 192.168.0.0/16, ::1"`` as networks; ``ValueError`` for a bad one."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in text.split(",") if part.strip())


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedProxies:
    """ASGI middleware: ``scope["client"]`` from ``X-Forwarded-For``, only when the
    peer is a trusted proxy (and each hop walked through is one too)."""

    def __init__(self, app: ASGIApp, trusted: Iterable[Network]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    def _trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return address is not None and any(address in net for net in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted and scope.get("client"):
            peer = _address(scope["client"][0])
            if self._trusted(peer):
                hops = [h for name, value in scope.get("headers", ())
                        if name == b"x-forwarded-for"
                        for h in value.decode("latin-1").split(",")]
                client = scope["client"]
                # Right to left: each trusted proxy vouches for the hop before it; the
                # first address no trusted proxy stands for is the client.
                for hop in reversed(hops):
                    address = _address(hop)
                    if address is None:
                        break  # garbage from someone: keep the last address we trust
                    client = (str(address), 0)
                    if not self._trusted(address):
                        break
                scope = dict(scope, client=client)
        await self.app(scope, receive, send)


def same_origin(request: Request, public_url: str) -> bool:
    """True when a browser says this request comes from the service's own pages.

    ``Origin`` decides when it names a site: the service's (its public URL's, or the
    one the request was sent to) passes, any other fails. ``Origin: null`` names none
    (a browser sends it for a form posted from a page with ``Referrer-Policy:
    no-referrer``, as ours are, and from sandboxed frames): then ``Sec-Fetch-Site``
    decides, and must say ``same-origin``. Without ``Origin``, ``Sec-Fetch-Site`` must
    be ``same-origin`` or ``none`` (typed by the user) when present; a request with
    neither header is no browser's form post and passes.
    """
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    if origin is not None and origin != "null":
        own = {_origin(public_url), _origin(str(request.base_url))}
        return origin.lower().rstrip("/") in own
    if origin == "null":
        return site == "same-origin"
    return site is None or site in ("same-origin", "none")


def require_same_origin(request: Request) -> None:
    """A route dependency for cookie-authenticated form posts: a 403 problem unless
    :func:`same_origin` (against ``INVOICER_PUBLIC_URL``), before anything happens;
    on top of the session cookie's ``SameSite=Strict``, so a cross-site post (logging
    a victim in to the attacker's account included) changes nothing."""
    from invoicer.api.problems import Problem

    if not same_origin(request, request.app.state.settings.public_url):
        raise Problem(403, "cross-site-post", "Cross-site form posts are refused",
                      detail="Open the page on this site and send the form from there.")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{host}{port}"


class Deferred:
    """A few threads doing work handed over by requests, after their answer, from a
    bounded queue; when it is full the work is dropped and logged (a subscriber asks
    for a code again)."""

    def __init__(self, threads: int = 2, capacity: int = 1000, name: str = "deferred") -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = \
            queue.Queue(capacity)
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"{name}-{i}")
                         for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)``; False (and nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait((fn, args))
        except queue.Full:
            log.warning("deferred work dropped: the queue is full")
            return False
        return True

    def join(self) -> None:
        """Wait until everything queued so far is done (tests, shutdown)."""
        self._queue.join()

    def close(self) -> None:
        """Finish what is queued, then stop the threads."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(30)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                fn, args = item
                fn(*args)
            except Exception:  # one failed job must not stop the others
                log.exception("deferred work failed")
            finally:
                self._queue.task_done()


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class AllowedMethods:
    """ASGI middleware: ``OPTIONS`` on a path the API serves is ``204`` with ``Allow``
    (every method of every route of that path, plus ``OPTIONS``); a ``405`` for another
    method gets the same ``Allow``. Unknown paths stay ``404``."""

    def __init__(self, app: ASGIApp, routes: Callable[[], Iterable[Any]]) -> None:
        self.app = app
        self._routes = routes

    def _allowed(self, scope: Scope) -> list[str]:
        # Asked of the routes themselves, method by method (whatever their kind: an
        # included router answers for its own routes), not read off their attributes.
        methods = {method for method in _METHODS for route in self._routes()
                   if route.matches({**scope, "method": method})[0] == Match.FULL}
        if methods:
            methods |= {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
        return sorted(methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            allowed = self._allowed(scope)
            if allowed:
                await send({"type": "http.response.start", "status": 204,
                            "headers": [(b"allow", ", ".join(allowed).encode()),
                                        (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allowed = ", ".join(self._allowed(scope)).encode()
                message = dict(message, headers=[
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"
                ] + [(b"allow", allowed)])
            await send(message)

        await self.app(scope, receive, send_with_allow)
