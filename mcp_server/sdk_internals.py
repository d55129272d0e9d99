"""Every place genroute reaches into the `mcp` SDK's private parts (written against mcp 2.3), in one module.

MCPServer offers no public way to do a few things genroute needs: look up a tool's argument model (to name a bad
argument), rewrite the tools' schemas once at build time, skip the per-call header walk, serve logging/setLevel
(which MCPServer leaves unanswered), register resource templates by copying one, cap sessions per key, and answer
a request with one JSON body where the SDK would open an SSE stream. Each
function below names the private attribute it uses. `verify` checks all of them against a live server:
tests/test_sdk_internals.py runs it, so an SDK upgrade that moves one fails there, naming the attribute, instead
of quietly slowing or breaking a feature. Nothing outside this module touches an SDK attribute starting with `_`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK modules are loaded by their users; importing this module costs nothing at start
    from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.resources import ResourceTemplate
    from mcp.server.mcpserver.tools import Tool
    from mcp.server.streamable_http import StreamableHTTPServerTransport
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from starlette.types import ASGIApp

    Admission = Callable[[AuthorizationContext | None], StreamableHTTPServerTransport | None]

InputSchemaLookup = Callable[[str], Mapping[str, Any] | None]


class SdkChanged(RuntimeError):
    """The installed SDK no longer has something genroute relies on; the message names it."""

    def __init__(self, *what: str) -> None:
        self.what = what
        listed = what[0] if len(what) == 1 else "it changed what genroute relies on:\n- " + "\n- ".join(what)
        super().__init__(f"mcp {sdk_version()}: {listed}\n(see mcp_server/sdk_internals.py)")


@functools.cache
def sdk_version() -> str:
    return version("mcp")


def _reach(owner: Any, name: str, purpose: str) -> Any:
    try:
        return getattr(owner, name)
    except AttributeError:
        raise SdkChanged(f"{type(owner).__name__}.{name} is gone; genroute uses it to {purpose}") from None


# ----- tools ---------------------------------------------------------------------------------------------------


def tool_lookup(mcp: MCPServer[Any]) -> Callable[[str], Tool | None]:
    """name -> the registered Tool (its `fn_metadata` validates arguments). MCPServer._tool_manager."""
    return _reach(_reach(mcp, "_tool_manager", "look up a tool's argument model"), "get_tool", "look up a tool")


def registered_tools(mcp: MCPServer[Any]) -> list[Tool]:
    """Every registered Tool, to rewrite its schemas. MCPServer._tool_manager."""
    manager = _reach(mcp, "_tool_manager", "rewrite the tools' schemas")
    return list(_reach(manager, "list_tools", "rewrite the tools' schemas")())


def replace_tool_schemas(tool: Tool, parameters: dict[str, Any], output: dict[str, Any] | None) -> None:
    """Give `tool` other (equivalent) schemas: `parameters`, and `fn_metadata.output_schema`, which the cached
    `Tool.output_schema` property copies once read (dropped here, so it is read again)."""
    tool.parameters = parameters
    if output is not None:
        tool.fn_metadata.output_schema = output
        tool.__dict__.pop("output_schema", None)


def wrap_tool_input_schema_lookup(mcp: MCPServer[Any], wrap: Callable[[InputSchemaLookup], InputSchemaLookup]) -> None:
    """Replace the low-level server's `get_tool_input_schema` (called on every tools/call over streamable HTTP to
    find `x-mcp-header` annotations) with `wrap(it)`. MCPServer._lowlevel_server."""
    lowlevel = _reach(mcp, "_lowlevel_server", "skip the per-call Mcp-Param header walk")
    lookup = _reach(lowlevel, "get_tool_input_schema", "skip the per-call Mcp-Param header walk")
    if not callable(lookup):
        raise SdkChanged("Server.get_tool_input_schema is not a function any more")
    lowlevel.get_tool_input_schema = wrap(lookup)


# ----- protocol methods and resource templates -----------------------------------------------------------------


async def serve_streams(mcp: MCPServer[Any], read_stream: Any, write_stream: Any) -> None:
    """Serve one connection on the given streams, as `MCPServer.run_stdio_async` does on the SDK's own stdio
    streams (mcp_server/stdio.py brings its own). MCPServer._lowlevel_server."""
    lowlevel = _reach(mcp, "_lowlevel_server", "serve stdio on genroute's streams")
    await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


def add_request_handler(mcp: MCPServer[Any], method: str, params_type: type[Any], handler: Callable[..., Any]) -> None:
    """Serve `method`, which MCPServer has no decorator for. MCPServer._lowlevel_server."""
    lowlevel = _reach(mcp, "_lowlevel_server", f"serve {method}")
    _reach(lowlevel, "add_request_handler", f"serve {method}")(method, params_type, handler)


def resource_templates(mcp: MCPServer[Any]) -> dict[str, ResourceTemplate]:
    """The registered templates by URI, to add copies of one. MCPServer._resource_manager._templates."""
    manager = _reach(mcp, "_resource_manager", "register resource templates by copying one")
    templates = _reach(manager, "_templates", "register resource templates by copying one")
    if not isinstance(templates, dict):
        raise SdkChanged("ResourceManager._templates is not a dict any more")
    return templates


def add_template_copy(
    mcp: MCPServer[Any], original: ResourceTemplate, uri: str, fn: Callable[..., Any], **shown: Any
) -> None:
    """Register a template like `original` (its argument model and schema, which the SDK derives at ~1.5 ms a
    template) under another URI, with its own function and names."""
    from mcp.shared.uri_template import UriTemplate
    from pydantic import validate_call

    own = {"uri_template": uri, "parsed_template": UriTemplate.parse(uri), "fn": validate_call(fn)}
    resource_templates(mcp)[uri] = original.model_copy(update={**shown, **own})


# ----- sessions ------------------------------------------------------------------------------------------------


def guard_session_admission(
    manager: StreamableHTTPSessionManager,
    check: Callable[[AuthorizationContext | None, Mapping[str, AuthorizationContext]], None],
) -> None:
    """Call `check(requestor, owners)` as the session manager admits a new session, under its creation lock, with
    who opened each open session (session id -> credential); `check` refuses by raising.
    StreamableHTTPSessionManager._admit_session and ._session_owners."""
    admit: Admission = _reach(manager, "_admit_session", "cap sessions per key")
    owners: dict[str, AuthorizationContext] = _reach(manager, "_session_owners", "cap sessions per key")

    @functools.wraps(admit)
    def admit_checked(requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        check(requestor, owners)
        return admit(requestor)

    manager._admit_session = admit_checked  # type: ignore[method-assign]


# The request being handled is to be answered with one JSON body (`json_answers`). A 2025-11-25 session transport
# reads its own variable, set only while it handles a POST: a session's tasks start inside the `initialize`
# request and inherit that request's context, and their router must not take the answer mode of that one request.
_JSON_WANTED: ContextVar[bool] = ContextVar("genroute_json_wanted", default=False)
_JSON_ANSWER: ContextVar[bool] = ContextVar("genroute_json_answer", default=False)


@contextmanager
def json_answers() -> Iterator[None]:
    """Within: the request being handled is answered with one JSON body (see `answer_requests_with`)."""
    token = _JSON_WANTED.set(True)
    try:
        yield
    finally:
        _JSON_WANTED.reset(token)


def answer_requests_with(manager: StreamableHTTPSessionManager, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
    """Handle each request to the SDK's streamable HTTP endpoint through `wrap(the SDK's handler)`, which may
    answer it as one JSON body (`json_answers()`) where the SDK would open an SSE stream (http_answers.py says
    when and why). The SDK decides once per server; here each request does, by a context variable read where the
    SDK reads its setting: the manager's `json_response` (2026-07-28 requests) and a 2025-11-25 session
    transport's `is_json_response_enabled`. `wrap` asks for JSON only from clients that accept SSE too, so the
    SDK's Accept rule for SSE (both types) still holds. StreamableHTTPSessionManager.asgi_app (a
    RequestBodyLimitMiddleware: its `app`), json_response and _admit_session; the transport's
    is_json_response_enabled and _handle_post_request."""
    limit = manager.asgi_app
    limit.app = wrap(limit.app)  # inside the SDK's body limit: the body is read (and capped) once
    manager.__class__ = _json_answering(type(manager), "json_response", _JSON_WANTED)
    admit: Admission = _reach(manager, "_admit_session", "answer requests as JSON")
    transport_class = _json_answering_transport()

    @functools.wraps(admit)
    def admit_answering_json(requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        transport = admit(requestor)
        if transport is not None:
            transport.__class__ = transport_class  # the SDK builds the transport; only its class's choices change
        return transport

    manager._admit_session = admit_answering_json  # type: ignore[method-assign]


def _json_answering(base: type[Any], setting: str, wanted: ContextVar[bool]) -> type[Any]:
    """`base` with its boolean attribute `setting` read from `wanted` (set once in its __init__: ignored)."""

    def read(_: Any) -> bool:
        return wanted.get()

    def write(_: Any, __: bool) -> None:
        pass

    return type(f"JsonAnswering{base.__name__}", (base,), {setting: property(read, write)})


@functools.cache
def _json_answering_transport() -> type[StreamableHTTPServerTransport]:
    from mcp.server.streamable_http import StreamableHTTPServerTransport
    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

    answering = _json_answering(StreamableHTTPServerTransport, "is_json_response_enabled", _JSON_ANSWER)

    class JsonAnsweringTransport(answering):  # type: ignore[misc, valid-type]
        async def _handle_post_request(self, scope: Scope, request: Request, receive: Receive, send: Send) -> None:
            token = _JSON_ANSWER.set(_JSON_WANTED.get())
            try:
                await super()._handle_post_request(scope, request, receive, send)
            finally:
                _JSON_ANSWER.reset(token)

    return JsonAnsweringTransport


# ----- the check -----------------------------------------------------------------------------------------------


def advertise_list_changes(mcp: MCPServer[Any]) -> None:
    """Declare tools, resources and prompts `listChanged` at `initialize` (2025-11-25): a config reload changes
    them and tells the sessions. MCPServer builds its initialize answer from `_lowlevel_server`'s
    `create_initialization_options()` with no NotificationOptions (all false), on stdio and HTTP alike."""
    from mcp.server.lowlevel.server import NotificationOptions

    lowlevel = _reach(mcp, "_lowlevel_server", "declare listChanged")
    create = lowlevel.create_initialization_options
    changes = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)

    @functools.wraps(create)
    def with_list_changes(notification_options: Any = None, *args: Any, **kwargs: Any) -> Any:
        return create(notification_options or changes, *args, **kwargs)

    lowlevel.create_initialization_options = with_list_changes


def connection_of(session: Any) -> Any:
    """The connection a request's ServerSession belongs to (ServerSession._connection): a ServerSession lives for
    one request, its connection as long as the client stays; `send_tool_list_changed()` and its siblings on the
    connection reach the client outside any request (reload.py)."""
    return _reach(session, "_connection", "tell connected clients that the lists changed")


def verify(mcp: MCPServer[Any]) -> None:
    """Raise SdkChanged naming every private attribute (or shape) used above that `mcp` lacks. `mcp` should have
    tools (one with an output schema) and a resource template registered, and its streamable HTTP app built."""
    from mcp.server.mcpserver.resources import ResourceTemplate
    from mcp.server.mcpserver.tools import Tool

    problems: list[str] = []

    def found(what: str, get: Callable[[], Any]) -> Any:
        """`get()`, or None with `what` recorded as a problem (an SdkChanged's own message where it says more)."""
        try:
            value = get()
        except SdkChanged as exc:
            problems.extend(exc.what)
            return None
        except Exception as exc:
            value = None
            what = f"{what} ({type(exc).__name__}: {exc})"
        if value is None or value is False:
            problems.append(what)
            return None
        return value

    tools = found("MCPServer._tool_manager lists the registered tools", lambda: registered_tools(mcp) or None) or []
    lookup = found("MCPServer._tool_manager.get_tool", lambda: tool_lookup(mcp))
    if lookup is not None:
        found(
            "MCPServer._tool_manager.get_tool finds each tool by name", lambda: all(lookup(t.name) is t for t in tools)
        )
    found("Tool.parameters is a field", lambda: "parameters" in Tool.model_fields)
    found("Tool.fn_metadata.validate_arguments", lambda: all(callable(t.fn_metadata.validate_arguments) for t in tools))
    found(
        "Tool.output_schema is a functools.cached_property (replace_tool_schemas drops its cached value)",
        lambda: isinstance(Tool.__dict__.get("output_schema"), functools.cached_property),
    )
    found(
        "Tool.fn_metadata.output_schema holds a tool's output schema",
        lambda: not tools or any(isinstance(t.fn_metadata.output_schema, dict) for t in tools),
    )
    lowlevel = found("MCPServer._lowlevel_server", lambda: _reach(mcp, "_lowlevel_server", "serve protocol methods"))
    if lowlevel is not None:
        found(
            "Server.get_tool_input_schema(name) is a function of the tool's name",
            lambda: _parameters(lowlevel.get_tool_input_schema) == 1,
        )
        found(
            "Server.create_initialization_options(notification_options, ...)",
            lambda: "notification_options" in inspect.signature(lowlevel.create_initialization_options).parameters,
        )
        found(
            "Server.run(read_stream, write_stream, initialization_options, ...)",
            lambda: (
                list(inspect.signature(lowlevel.run).parameters)[:3]
                == ["read_stream", "write_stream", "initialization_options"]
            ),
        )
        found(
            "Server.add_request_handler(method, params_type, handler)",
            lambda: _parameters(lowlevel.add_request_handler) == 3,
        )
    templates = found("MCPServer._resource_manager._templates", lambda: resource_templates(mcp)) or {}
    found(
        "ResourceManager._templates maps URIs to ResourceTemplate values",
        lambda: all(isinstance(t, ResourceTemplate) and t.uri_template == uri for uri, t in templates.items()),
    )
    found(
        "ResourceTemplate has the fields uri_template, parsed_template and fn",
        lambda: {"uri_template", "parsed_template", "fn"} <= set(ResourceTemplate.model_fields),
    )
    manager = found("MCPServer.session_manager (after streamable_http_app())", lambda: mcp.session_manager)
    if manager is not None:
        found(
            "StreamableHTTPSessionManager._admit_session(requestor)",
            lambda: _parameters(_reach(manager, "_admit_session", "cap sessions per key")) == 1,
        )
        found(
            "StreamableHTTPSessionManager._session_owners is a dict",
            lambda: isinstance(_reach(manager, "_session_owners", "cap sessions per key"), dict),
        )
    from mcp.server.streamable_http import StreamableHTTPServerTransport

    found(
        "StreamableHTTPServerTransport sets is_json_response_enabled in __init__ and reads it when answering",
        lambda: (
            "self.is_json_response_enabled = is_json_response_enabled"
            in inspect.getsource(StreamableHTTPServerTransport.__init__)
            and "self.is_json_response_enabled" in inspect.getsource(StreamableHTTPServerTransport._handle_post_request)
        ),
    )
    found(
        "StreamableHTTPServerTransport._handle_post_request(scope, request, receive, send)",
        lambda: (
            list(inspect.signature(StreamableHTTPServerTransport._handle_post_request).parameters)
            == ["self", "scope", "request", "receive", "send"]
        ),
    )
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    found(
        "StreamableHTTPSessionManager sets json_response and asgi_app (a RequestBodyLimitMiddleware around "
        "_handle_request) in __init__, and _handle_request reads self.json_response",
        lambda: (
            "self.json_response = json_response" in inspect.getsource(StreamableHTTPSessionManager.__init__)
            and "RequestBodyLimitMiddleware(self._handle_request" in inspect.getsource(StreamableHTTPSessionManager)
            and "self.json_response" in inspect.getsource(StreamableHTTPSessionManager._handle_request)
        ),
    )
    from mcp.server.connection import Connection
    from mcp.server.session import ServerSession

    found(
        "ServerSession sets _connection in __init__, and Connection has send_{tool,resource,prompt}_list_changed",
        lambda: (
            "self._connection = connection" in inspect.getsource(ServerSession.__init__)
            and all(
                callable(getattr(Connection, f"send_{kind}_list_changed", None))
                for kind in ("tool", "resource", "prompt")
            )
        ),
    )
    if problems:
        raise SdkChanged(*problems)


def _parameters(function: Callable[..., Any]) -> int:
    return len(inspect.signature(function).parameters)
