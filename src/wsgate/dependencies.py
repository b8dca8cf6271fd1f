"""Per-connection dependencies: ``App(dependencies=[...])``.

A dependency is a function whose parameters are connection-scoped (``ws: WebSocket``,
``Header[...]``, ``Query[...]``, path parameters, providers, other dependencies). It is
called once per connection, before the guards that take its result and before
``@on_connect``, and its result is injected, by its return annotation, into every hook,
guard and handler of that connection that takes that type::

    async def current_user(token: Header[str], users: UserStore) -> User:
        return await users.by_token(token)    # raise WebSocketError to refuse

    @asynccontextmanager                      # or a bare async generator, one yield
    async def db_session(pool: Pool) -> AsyncIterator[Session]:
        async with pool.session() as s:
            yield s                           # exited after @on_disconnect

Those that are async context manager functions are entered before ``@on_connect`` and
exited after ``@on_disconnect`` (also when the handshake was refused or the connection
failed), in reverse order.
"""

from __future__ import annotations

import collections.abc
import contextlib
import inspect
import logging
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .di import Container, type_hints
from .errors import ConfigurationError
from .plan import DependencyPlan, GatewayPlan, HandlerPlan, Kind, callable_name

if TYPE_CHECKING:
    from .session import Session

__all__ = ["ConnectionDependencies", "Dependency", "analyse_dependencies"]

logger = logging.getLogger("wsgate")

_ITERATORS = (
    collections.abc.AsyncIterator,
    collections.abc.AsyncGenerator,
    collections.abc.AsyncIterable,
)


@dataclass(frozen=True, slots=True)
class Dependency:
    """One entry of ``App(dependencies=[...])``, analysed once."""

    #: The type it provides (its return annotation; the yielded type for a context).
    type: Any
    #: ``module.qualname``, for messages.
    name: str
    #: The function whose signature says what it takes.
    signature: Callable[..., Any]
    #: What to call: the function, or the context manager factory.
    factory: Callable[..., Any]
    #: Its result is an async context manager, entered and exited around the connection.
    context: bool


def _yielded(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in _ITERATORS:
        args = typing.get_args(annotation)
        if args:
            return args[0]
    return None


def _analyse(func: Any) -> Dependency:
    name = callable_name(func)
    if isinstance(func, type) or not callable(func):
        raise ConfigurationError(
            f"App(dependencies=[...]) takes functions, not {func!r}; register classes and "
            "instances (app-wide singletons) in App(providers=[...])"
        )
    wrapped = getattr(func, "__wrapped__", None)
    if inspect.isasyncgenfunction(func):
        signature, factory, context = func, contextlib.asynccontextmanager(func), True
    elif wrapped is not None and inspect.isasyncgenfunction(wrapped):
        signature, factory, context = wrapped, func, True  # @asynccontextmanager
    elif inspect.isgeneratorfunction(func) or (
        wrapped is not None and inspect.isgeneratorfunction(wrapped)
    ):
        raise ConfigurationError(
            f"dependency {name} is a synchronous generator; write it as an async generator "
            "(async def ... yield) or an @asynccontextmanager function"
        )
    else:
        signature, factory, context = func, func, False
    hints = type_hints(signature, f"dependency {name}")
    ret = hints.get("return")
    how = (
        "annotate the type it provides, e.g. -> AsyncIterator[Session]"
        if context
        else "annotate the type it provides, e.g. -> User"
    )
    if ret is None or ret is type(None):
        raise ConfigurationError(
            f"dependency {name} has no return annotation; {how}: handlers, guards and hooks "
            "receive its result by that type"
        )
    if context:
        ret = _yielded(ret)
        if ret is None:
            raise ConfigurationError(
                f"dependency {name} is an async context manager function, but its return "
                f"annotation is not AsyncIterator[T] or AsyncGenerator[T, None]; {how}"
            )
    try:
        hash(ret)
    except TypeError:
        raise ConfigurationError(
            f"dependency {name}: its return annotation {ret!r} cannot be used as a key; "
            "return a class"
        ) from None
    return Dependency(ret, name, signature, factory, context)


def analyse_dependencies(
    dependencies: Iterable[Any], container: Container
) -> dict[Any, Dependency]:
    """Read ``App(dependencies=[...])`` once: each function's type, and no two for one
    type, none for a provider's type, no cycle. Raises
    :class:`~wsgate.errors.ConfigurationError` naming the dependency."""
    out: dict[Any, Dependency] = {}
    for func in dependencies:
        dep = _analyse(func)
        label = getattr(dep.type, "__qualname__", repr(dep.type))
        if dep.type in out:
            raise ConfigurationError(
                f"dependencies {out[dep.type].name} and {dep.name} both provide {label}; "
                "keep one"
            )
        if container.can_provide(dep.type):
            raise ConfigurationError(
                f"dependency {dep.name} provides {label}, which App(providers=[...]) already "
                "provides; keep one of them"
            )
        out[dep.type] = dep
    _check_cycles(out)
    return out


def _check_cycles(deps: dict[Any, Dependency]) -> None:
    edges: dict[Any, list[Any]] = {}
    for tp, dep in deps.items():
        hints = type_hints(dep.signature, f"dependency {dep.name}")
        hints.pop("return", None)
        edges[tp] = [h for h in hints.values() if _key(h) in deps]
    done: set[Any] = set()

    def visit(tp: Any, chain: tuple[Any, ...]) -> None:
        if tp in chain:
            cycle = (*chain[chain.index(tp) :], tp)
            names = " -> ".join(deps[t].name for t in cycle)
            raise ConfigurationError(
                f"dependency cycle between per-connection dependencies: {names}"
            )
        if tp in done:
            return
        for nxt in edges[tp]:
            visit(nxt, (*chain, tp))
        done.add(tp)

    for tp in deps:
        visit(tp, ())


def _key(annotation: Any) -> Any:
    try:
        hash(annotation)
    except TypeError:
        return None
    return annotation


class ConnectionDependencies:
    """The dependency results of one connection, and the contexts to exit at its end."""

    __slots__ = ("_stack", "plan", "values")

    def __init__(self, plan: GatewayPlan) -> None:
        self.plan = plan
        #: Results by type; read by the connection's session.
        self.values: dict[Any, Any] = {}
        self._stack: contextlib.AsyncExitStack | None = None

    async def ensure(self, h: HandlerPlan, session: Session) -> None:
        """Resolve every dependency ``h`` takes that is not resolved yet."""
        values = self.values
        for p in h.params:
            if p.kind is Kind.DEPENDENCY and p.type not in values:
                await self.resolve(self.plan.dependencies[p.type], session)

    async def resolve(self, dep: DependencyPlan, session: Session) -> Any:
        """Call (or enter) ``dep`` once, after the dependencies it takes."""
        values = self.values
        if dep.type in values:
            return values[dep.type]
        await self.ensure(dep.call, session)
        result = await session.call_once(dep.call)
        if dep.context:
            if self._stack is None:
                self._stack = contextlib.AsyncExitStack()
            result = await self._stack.enter_async_context(result)
        values[dep.type] = result
        return result

    async def resolve_all(self, session: Session) -> None:
        """Resolve every dependency of the gateway (before ``@on_connect``)."""
        plan = self.plan
        for tp in plan.dependency_order:
            if tp not in self.values:
                await self.resolve(plan.dependencies[tp], session)

    async def aclose(self) -> None:
        """Exit the entered contexts, last entered first. Errors are logged."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        try:
            await stack.aclose()
        except Exception:
            logger.exception("a per-connection dependency failed while exiting")
