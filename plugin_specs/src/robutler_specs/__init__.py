"""The Robutler plugin contract.

A plugin depends on this package only (never on the kernel): it defines Skill classes
with hooks and tools, and exposes them from its module through ``robutler_skills``::

    from robutler_specs import Skill, hookimpl, tool

    class Weather(Skill):
        name = "weather"

        @tool
        def get_weather(self, city: str) -> str:
            \"\"\"Current weather for a city.\"\"\"
            return f"sunny in {city}"

    @hookimpl
    def robutler_skills():
        return [Weather]

The hook reference is :mod:`robutler_specs.hookspecs`.
"""

from __future__ import annotations

from .agent import AgentSpec, Handoff, RetryPolicy
from .context import (
    ANONYMOUS,
    AgentCall,
    HttpRequest,
    Identity,
    LLMCall,
    LLMResult,
    RequestContext,
    ToolInvocation,
    ToolResult,
    UsageRecord,
)
from .errors import (
    BadRequest,
    ConfigError,
    ContentBlocked,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PaymentRequired,
    PluginError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestError,
    ServiceUnavailable,
    ToolError,
    Unauthorized,
)
from .hookspecs import KERNEL_HOOKS, SKILL_HOOKS, KernelHooks, SkillHooks
from .markers import ENTRY_POINT_GROUP, PROJECT_NAME, hookimpl, hookspec
from .provider import ProviderConfig, SSEStream
from .responses import (
    FunctionCallItem,
    InputItem,
    OutputMessage,
    OutputText,
    Response,
    ResponsesRequest,
    ResponseUsage,
    StoredResponse,
)
from .routes import HttpResponse, HttpRoute
from .skill import KernelAPI, NoConfig, Skill
from .store import StateStore
from .tools import (
    SCOPES,
    Pricing,
    ToolSpec,
    build_tool_spec,
    handoff,
    http,
    pricing,
    prompt,
    tool,
)
from .wire import (
    FORWARDED_PARAMS,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    ErrorBody,
    FunctionCall,
    FunctionCallDelta,
    Message,
    PromptTokensDetails,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "ANONYMOUS",
    "ENTRY_POINT_GROUP",
    "FORWARDED_PARAMS",
    "KERNEL_HOOKS",
    "PROJECT_NAME",
    "SCOPES",
    "SKILL_HOOKS",
    "AgentCall",
    "AgentSpec",
    "BadRequest",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "Choice",
    "ChunkChoice",
    "ConfigError",
    "ContentBlocked",
    "Delta",
    "ErrorBody",
    "Forbidden",
    "FunctionCall",
    "FunctionCallDelta",
    "FunctionCallItem",
    "Handoff",
    "HttpRequest",
    "HttpResponse",
    "HttpRoute",
    "Identity",
    "InputItem",
    "KernelAPI",
    "KernelHooks",
    "LLMCall",
    "LLMResult",
    "Message",
    "NoConfig",
    "NotFound",
    "OutputMessage",
    "OutputText",
    "PayloadTooLarge",
    "PaymentRequired",
    "PluginError",
    "Pricing",
    "PromptTokensDetails",
    "ProviderConfig",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "RequestContext",
    "RequestError",
    "Response",
    "ResponseUsage",
    "ResponsesRequest",
    "RetryPolicy",
    "SSEStream",
    "ServiceUnavailable",
    "Skill",
    "SkillHooks",
    "StateStore",
    "StoredResponse",
    "ToolCall",
    "ToolCallDelta",
    "ToolDefinition",
    "ToolError",
    "ToolInvocation",
    "ToolResult",
    "ToolSpec",
    "Unauthorized",
    "Usage",
    "UsageRecord",
    "build_tool_spec",
    "handoff",
    "hookimpl",
    "hookspec",
    "http",
    "pricing",
    "prompt",
    "tool",
]
