"""Bearer-token authentication as a server interceptor: every call except the health check must carry
``authorization: Bearer <token>`` of one of the configured principals; anything else ends with
``UNAUTHENTICATED``. :func:`principal_of` names the caller (its token's name, else its mTLS certificate subject):
streams belong to that principal."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc

from server.status_map import SERVER_STATUS_METADATA, read_first_then

# Probes (docker/k8s) must reach health without the token.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)


def _deny_handler(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that ends the call with ``UNAUTHENTICATED``."""

    async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message, SERVER_STATUS_METADATA)

    async def deny_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message, SERVER_STATUS_METADATA)
        yield  # pragma: no cover - abort raises; this makes it a response-streaming generator

    async def deny_request_stream(request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        await read_first_then(
            request_iterator
        )  # the client's first write is done: it cannot race the refusal
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message, SERVER_STATUS_METADATA)

    async def deny_bidi(request_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await read_first_then(request_iterator)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message, SERVER_STATUS_METADATA)
        yield  # pragma: no cover

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny_bidi)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny_request_stream)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny_stream)
    return grpc.unary_unary_rpc_method_handler(deny)


Metadata = tuple[tuple[str, str | bytes], ...] | None


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """``tokens``: one token (its principal is "default") or principal name -> token."""

    def __init__(self, tokens: str | Mapping[str, str]) -> None:
        named = {"default": tokens} if isinstance(tokens, str) else dict(tokens)
        if not named or not all(named.values()):
            raise ValueError("empty token")
        self._expected = [(name, f"Bearer {tok}".encode()) for name, tok in named.items()]

    def identify(self, metadata: Metadata) -> str | None:
        """The name of the principal whose token the metadata carries, else ``None``."""
        values = [v for k, v in (metadata or ()) if k == "authorization"]
        if not values:
            return None
        got = values[0].encode() if isinstance(values[0], str) else values[0]
        found = None
        for name, expected in self._expected:  # compare with every token: no early exit
            if hmac.compare_digest(got, expected):
                found = name
        return found

    def check(self, metadata: Metadata) -> str | None:
        """``None`` when the metadata carries a configured token, else the reason."""
        if not any(k == "authorization" for k, _ in (metadata or ())):
            return "missing `authorization: Bearer <token>` metadata"
        if self.identify(metadata) is None:
            return "invalid bearer token"
        return None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method or ""
        if method.startswith(OPEN_METHOD_PREFIXES):
            return await continuation(handler_call_details)
        reason = self.check(handler_call_details.invocation_metadata)
        handler = await continuation(handler_call_details)
        if reason is None or handler is None:
            return handler
        return _deny_handler(handler, reason)


def certificate_subject(context: grpc.aio.ServicerContext) -> str:
    """The verified client certificate's subject (mutual TLS), or ``""``."""
    try:
        auth = context.auth_context() or {}
    except Exception:
        return ""
    for key in ("x509_subject", "x509_common_name"):
        values = auth.get(key) or []
        if values:
            v = values[0]
            return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return ""


def principal_of(context: grpc.aio.ServicerContext, tokens: BearerTokenInterceptor | None) -> str:
    """Who is calling: the name of its bearer token when tokens are configured, else its mTLS certificate subject,
    else ``""`` (no authentication: every caller is the same principal)."""
    if tokens is not None:
        return tokens.identify(tuple(context.invocation_metadata() or ())) or ""
    return certificate_subject(context)
