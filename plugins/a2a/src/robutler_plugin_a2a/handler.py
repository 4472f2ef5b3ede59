"""The A2A request handler of one agent: the SDK's ``RequestHandler`` interface, answered by
running the agent in the request the plugin route is handling.

The route has run ``on_connection`` (auth identified the caller, payments reserved) before
the SDK's dispatcher calls this; the agent's conversation runs with
``kernel.run_request(ctx)`` / ``kernel.stream_request(ctx)``, inside that same request, and
``finalize_connection`` settles once the answer is sent. A task goes ``submitted`` ->
``working`` -> ``completed`` (the answer is its artifact ``answer`` and the last message of
its history) or ``failed`` (the status message says why; the error's code and status are in
its metadata). A Robutler agent answers each message in full, so a task never waits for
input: a follow-up is a new message in the same ``contextId``, which continues the
conversation.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import (
    AgentCard,
    Artifact,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.types import Message as A2AMessage
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict

from robutler_specs import KernelAPI, Message, RequestContext, RequestError

from .config import A2AConfig
from .tasks import TaskStore

#: Where the route puts the request's context for the handler (ServerCallContext.state).
CTX = "robutler.ctx"
ANSWER = "answer"


def text_of(message: A2AMessage) -> str:
    """A message's parts as text for the agent: text as it is, data as JSON, files named."""
    pieces: list[str] = []
    for part in message.parts:
        kind = part.WhichOneof("content")
        if kind == "text":
            pieces.append(part.text)
        elif kind == "data":
            pieces.append(msgspec.json.encode(MessageToDict(part.data)).decode())
        elif kind in ("url", "raw"):
            name = part.filename or "a file"
            where = f" at {part.url}" if kind == "url" else " (sent inline, not read)"
            pieces.append(f"[{name}{f' ({part.media_type})' if part.media_type else ''}{where}]")
    return "\n".join(pieces)


def _agent_message(text: str, task: Task) -> A2AMessage:
    return A2AMessage(message_id=uuid.uuid4().hex, role=Role.ROLE_AGENT, parts=[Part(text=text)],
                      task_id=task.id, context_id=task.context_id)


def _failure(exc: RequestError) -> dict[str, Any]:
    return {"code": exc.code or "error", "status": exc.status}


class AgentRequestHandler(RequestHandler):
    """Answers A2A requests to one agent (see the module).

    :param kernel: the kernel serving the agent.
    :param agent: the agent's name.
    :param config: the agent's ``a2a`` settings.
    :param tasks: where tasks and histories are kept.
    """

    def __init__(self, kernel: KernelAPI, agent: str, config: A2AConfig, tasks: TaskStore) -> None:
        self.kernel = kernel
        self.agent = agent
        self.config = config
        self.tasks = tasks

    @staticmethod
    def _ctx(context: ServerCallContext) -> RequestContext:
        ctx = context.state.get(CTX)
        assert isinstance(ctx, RequestContext), "the a2a route puts the request's context here"
        return ctx

    @staticmethod
    def _owner(ctx: RequestContext) -> str:
        return ctx.identity.user_id or ""

    async def _begin(self, params: SendMessageRequest, ctx: RequestContext) -> tuple[Task, list[Message]]:
        """The new task for ``params.message``, and the conversation the agent gets."""
        message = params.message
        if not message.parts:
            raise InvalidParamsError(message="the message has no parts")
        if message.task_id:
            known = await self.tasks.task(message.task_id, self._owner(ctx))
            if known is None:
                raise TaskNotFoundError(message=f"no task {message.task_id!r} of agent {self.agent!r}")
            raise InvalidParamsError(
                message=f"task {message.task_id!r} has ended ({TaskState.Name(known.status.state)}); "
                "send a new message with its contextId to go on"
            )
        context_id = message.context_id or uuid.uuid4().hex
        task = Task(id=uuid.uuid4().hex, context_id=context_id,
                    status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED))
        user = A2AMessage()
        user.CopyFrom(message)
        user.context_id = context_id
        user.task_id = task.id
        task.history.append(user)
        history = await self.tasks.history(context_id, self._owner(ctx)) if self.config.history else []
        conversation = [*history, Message(role="user", content=text_of(message))]
        ctx.messages = conversation
        return task, conversation

    async def _end(self, ctx: RequestContext, task: Task, conversation: list[Message], answer: str | None,
                   error: RequestError | None) -> None:
        """Set the task's final state, keep it and the context's history."""
        if error is None:
            reply = _agent_message(answer or "", task)
            task.status.CopyFrom(TaskStatus(state=TaskState.TASK_STATE_COMPLETED))
            task.artifacts.append(Artifact(artifact_id=f"{task.id}-{ANSWER}", name=ANSWER,
                                           parts=[Part(text=answer or "")]))
            task.history.append(reply)
            if self.config.history:
                conversation = [*conversation, Message(role="assistant", content=answer or "")]
                await self.tasks.save_history(task.context_id, self._owner(ctx), conversation)
        else:
            task.status.CopyFrom(TaskStatus(state=TaskState.TASK_STATE_FAILED,
                                            message=_agent_message(error.message, task)))
            task.metadata.update({"error": _failure(error)})
        await self.tasks.save_task(task, self._owner(ctx))

    # -- message/send, message/stream -------------------------------------------------------

    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Task:
        """Run the agent on the message; the task in its final state."""
        ctx = self._ctx(context)
        task, conversation = await self._begin(params, ctx)
        task.status.state = TaskState.TASK_STATE_WORKING
        try:
            completion = await self.kernel.run_request(ctx)
        except RequestError as exc:
            await self._end(ctx, task, conversation, None, exc)
            return task
        choice = completion.choices[0] if completion.choices else None
        await self._end(ctx, task, conversation, choice.message.text() if choice else "", None)
        return task

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any, None]:
        """The task (``submitted``), ``working``, the answer as artifact chunks, then
        ``completed`` or ``failed``."""
        ctx = self._ctx(context)
        task, conversation = await self._begin(params, ctx)
        # Started here, in the route's handler (the dispatcher asks for the first event there).
        chunks = self.kernel.stream_request(ctx)
        yield task
        working = TaskStatus(state=TaskState.TASK_STATE_WORKING)
        yield TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id, status=working)
        artifact_id = f"{task.id}-{ANSWER}"
        text: list[str] = []
        error: RequestError | None = None
        try:
            async for chunk in chunks:
                for choice in chunk.choices:
                    delta = choice.delta.content
                    if not isinstance(delta, str) or not delta:
                        continue
                    yield TaskArtifactUpdateEvent(
                        task_id=task.id, context_id=task.context_id, append=bool(text),
                        artifact=Artifact(artifact_id=artifact_id, name=ANSWER, parts=[Part(text=delta)]),
                    )
                    text.append(delta)
        except RequestError as exc:
            error = exc
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        if error is None:
            yield TaskArtifactUpdateEvent(
                task_id=task.id, context_id=task.context_id, append=bool(text), last_chunk=True,
                artifact=Artifact(artifact_id=artifact_id, name=ANSWER, parts=[Part(text="")]),
            )
        await self._end(ctx, task, conversation, "".join(text), error)
        yield TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id, status=task.status,
                                    metadata=task.metadata)

    # -- tasks --------------------------------------------------------------------------------

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        """A task of this caller, its history cut to ``historyLength`` when given."""
        task = await self.tasks.task(params.id, self._owner(self._ctx(context)))
        if task is not None and params.HasField("history_length"):
            keep = max(params.history_length, 0)
            del task.history[: max(len(task.history) - keep, 0)]
        return task

    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task | None:
        """Every task here has ended by the time its request answers: nothing to cancel."""
        task = await self.tasks.task(params.id, self._owner(self._ctx(context)))
        if task is None:
            return None
        raise TaskNotCancelableError(
            message=f"task {params.id!r} has ended ({TaskState.Name(task.status.state)}); it cannot be canceled"
        )

    async def on_list_tasks(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        """Not offered."""
        raise UnsupportedOperationError(message="tasks/list is not offered by this agent")

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any, None]:
        """Not offered: a task's events come with the message that made it."""
        raise UnsupportedOperationError(message="a task has ended when its request answers; use tasks/get")
        yield

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        """Not offered: the public card is the whole card."""
        raise ExtendedAgentCardNotConfiguredError(message="this agent has no extended card")

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        """Not offered."""
        raise PushNotificationNotSupportedError()

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        """Not offered."""
        raise PushNotificationNotSupportedError()

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        """Not offered."""
        raise PushNotificationNotSupportedError()

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        """Not offered."""
        raise PushNotificationNotSupportedError()


__all__ = ["CTX", "AgentRequestHandler", "text_of"]
