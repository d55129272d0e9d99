"""Every failure a client can be told about, as a small hierarchy (after httpx's and openai-python's):

* GatewayError                 the base: message, envelope fields, and what the router does about it
  + InvalidArgument            400, names the argument
  + NotFound, Forbidden, Conflict, TooLarge, Unsupported
  + BudgetRefused              402, genroute's own budget (-> fallbacks)
    - PriceUnknown
  + TimedOut                   504
    - DeadlineExceeded         the caller's deadline_s: the router stops
  + InvalidJsonAnswer          an answer that is not the JSON response_format asked for (raw_text kept)
  + SubmissionOutcomeUnknown   a paid submission's answer was lost: never sent again
  + ServerFault                500/503, genroute's own
    - LocalModelFailed         the embedded model (-> fallbacks)
      · LocalModelUnavailable
  + UpstreamError              a provider failed; "Provider '<name>' ..."
    - UpstreamHTTPError        an HTTP error status, with the parsed body (`http_error` picks the subclass)
      · RequestRefused, KeyRefused (401), PermissionRefused (403), InsufficientBalance (402, money 403),
        RateLimited (429)
    - Unreachable, UpstreamTimeout, AnswerInterrupted, AnswerCut, MalformedAnswer, MediaTooLarge
* ConfigError                  the config file is wrong (exit 2 at start, never sent to a client)

Every layer raises these; the MCP surface turns them into an isError result with the OpenAI-style envelope
(`GatewayError.to_dict`). Anything else is a bug and reaches the client only as a generic message.
"""

from mcp_server.errors.base import ConfigError, ErrorBody, GatewayError
from mcp_server.errors.gateway import (
    BudgetRefused,
    Conflict,
    DeadlineExceeded,
    Forbidden,
    InvalidArgument,
    InvalidJsonAnswer,
    LocalModelFailed,
    LocalModelUnavailable,
    MissingApiKey,
    NotFound,
    PriceUnknown,
    ServerFault,
    SubmissionOutcomeUnknown,
    TimedOut,
    TooLarge,
    Unsupported,
    invalid_argument,
)
from mcp_server.errors.upstream import (
    AnswerCut,
    AnswerInterrupted,
    InsufficientBalance,
    KeyRefused,
    MalformedAnswer,
    MediaTooLarge,
    PermissionRefused,
    RateLimited,
    RequestRefused,
    Unreachable,
    UpstreamError,
    UpstreamFailure,
    UpstreamHTTPError,
    UpstreamTimeout,
    http_error,
    is_retryable_status,
)

__all__ = [
    "AnswerCut",
    "AnswerInterrupted",
    "BudgetRefused",
    "ConfigError",
    "Conflict",
    "DeadlineExceeded",
    "ErrorBody",
    "Forbidden",
    "GatewayError",
    "InsufficientBalance",
    "InvalidArgument",
    "InvalidJsonAnswer",
    "KeyRefused",
    "LocalModelFailed",
    "LocalModelUnavailable",
    "MalformedAnswer",
    "MediaTooLarge",
    "MissingApiKey",
    "NotFound",
    "PermissionRefused",
    "PriceUnknown",
    "RateLimited",
    "RequestRefused",
    "ServerFault",
    "SubmissionOutcomeUnknown",
    "TimedOut",
    "TooLarge",
    "Unreachable",
    "Unsupported",
    "UpstreamError",
    "UpstreamFailure",
    "UpstreamHTTPError",
    "UpstreamTimeout",
    "http_error",
    "invalid_argument",
    "is_retryable_status",
]
