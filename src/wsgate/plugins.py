"""Plug-ins: how what is built on the core registers with the :class:`~wsgate.App`.

The core (:mod:`wsgate.app`) serves ``@ws_controller`` gateways. Everything else an App
can serve is a plug-in: the Socket.IO / Engine.IO controllers
(:mod:`wsgate.socketio.install`), the browser client (:mod:`wsgate.static`), the
``/docs`` page (:mod:`wsgate.docs`) and the AsyncAPI document behind
:meth:`App.asyncapi <wsgate.App.asyncapi>` (:mod:`wsgate.asyncapi`). A plug-in is a
function that receives an :class:`AppSetup` while ``App.__init__`` runs and registers
through it what it adds: providers, gateways, HTTP mounts, the paths whose endpoints
check ``Origin`` themselves, the document builder.

Each plug-in module calls :func:`register` when it is imported, and ``wsgate/__init__.py``
imports every built-in plug-in. Importing any ``wsgate`` module runs
``wsgate/__init__.py`` first, so every App sees them, while :mod:`wsgate.app` imports
none of them: the dependency points from the plug-in to the core, never back. A registry
filled at import was chosen over ``App(plugins=[...])`` so that the public API stays what
it is: ``App(gateways=[...])`` with Socket.IO controllers among the gateways,
``App(docs_path=...)``, ``App(client_path=...)``.

A plug-in's life with one App, in order:

1. ``plugin(setup)``, in registration order: it reads its options
   (:meth:`AppSetup.option`), takes the gateway classes that are its own
   (:meth:`AppSetup.take_gateways`), adds providers (:meth:`AppSetup.provide`) and
   registers callbacks for the later steps.
2. The App builds its dependency container from the providers; each
   :meth:`AppSetup.add_gateways` factory is called with it and returns gateway classes
   the App compiles with the user's.
3. Once the App has its :class:`~wsgate.admission.Admission` (the Origin policy and the
   connection limits), each :meth:`AppSetup.on_admission` callback is called with it
   (an endpoint serving connections that are not WebSockets counts them there).
4. Once the App is built, each :meth:`AppSetup.on_built` callback is called with it
   (to mount HTTP endpoints with :meth:`App.mount_http <wsgate.App.mount_http>`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .admission import Admission
    from .app import App
    from .di import Container

__all__ = ["AppSetup", "Plugin", "plugins", "register"]

#: A plug-in: called once per App, while it is built, with that App's :class:`AppSetup`.
Plugin = Callable[["AppSetup"], None]
#: Builds the App's AsyncAPI document (see :meth:`AppSetup.describe_with`).
Describer = Callable[["App"], dict[str, Any]]

_registry: dict[str, Plugin] = {}


def register(name: str, plugin: Plugin) -> None:
    """Register ``plugin`` under ``name`` for every App built from now on.

    Registering a name again replaces its plug-in in place (a reloaded module registers
    itself once more); plug-ins run in the order their names were first registered.
    """
    _registry[name] = plugin


def plugins() -> tuple[Plugin, ...]:
    """The registered plug-ins, in the order they run."""
    return tuple(_registry.values())


class AppSetup:
    """What a plug-in sees of an App being built, and what the App collects from the
    plug-ins (see the module documentation for the order of the steps).

    :param gateways: The gateway classes given to the App; plug-ins take theirs.
    :param providers: The providers given to the App; plug-ins add theirs.
    :param options: The App keyword arguments that belong to plug-ins (``docs_path``,
        ``client_path``), None where not given.
    """

    def __init__(
        self,
        gateways: Iterable[type],
        providers: Iterable[Any],
        options: Mapping[str, Any],
    ) -> None:
        self._gateways = list(gateways)
        self._providers = list(providers)
        self._options = dict(options)
        self._factories: list[Callable[[Container], Iterable[type]]] = []
        self._built: list[Callable[[App], None]] = []
        self._admission: list[Callable[[Admission], None]] = []
        self._own_origin: list[str] = []
        self._describer: Describer | None = None

    # -- for plug-ins ----------------------------------------------------------------

    def option(self, name: str) -> Any:
        """The App keyword argument ``name`` (None if it was not given). Raises
        :class:`~wsgate.errors.ConfigurationError` for a name the App does not take."""
        if name not in self._options:
            raise ConfigurationError(
                f"App() has no plug-in option {name!r}; it has {sorted(self._options)}"
            )
        return self._options[name]

    def take_gateways(self, predicate: Callable[[type], bool]) -> list[type]:
        """Remove the gateway classes for which ``predicate`` is true from those the App
        compiles itself, and return them (in the order given)."""
        taken = [g for g in self._gateways if predicate(g)]
        if taken:
            self._gateways = [g for g in self._gateways if not predicate(g)]
        return taken

    def provide(self, *providers: Any) -> None:
        """Add providers (instances or classes, as ``App(providers=...)`` takes them)."""
        self._providers.extend(providers)

    def add_gateways(self, factory: Callable[[Container], Iterable[type]]) -> None:
        """Call ``factory`` with the App's container once it is built; the gateway
        classes it returns are compiled with the others."""
        self._factories.append(factory)

    def on_built(self, callback: Callable[[App], None]) -> None:
        """Call ``callback`` with the App once it is built (to mount HTTP endpoints)."""
        self._built.append(callback)

    def on_admission(self, callback: Callable[[Admission], None]) -> None:
        """Call ``callback`` with the App's :class:`~wsgate.admission.Admission` once it
        exists: a plug-in whose endpoint holds connections that are not WebSockets
        (Engine.IO long-polling sessions) counts them against ``max_connections`` and
        ``max_connections_per_client`` with :meth:`Admission.count
        <wsgate.admission.Admission.count>` and :meth:`Admission.release
        <wsgate.admission.Admission.release>`."""
        self._admission.append(callback)

    def checks_own_origin(self, path: str) -> None:
        """The endpoint at ``path`` checks the handshake's ``Origin`` itself: the App's
        ``allowed_origins`` policy does not apply there."""
        self._own_origin.append(path)

    def describe_with(self, describer: Describer) -> None:
        """Build :meth:`App.asyncapi <wsgate.App.asyncapi>` with ``describer``."""
        self._describer = describer

    # -- for the App -----------------------------------------------------------------

    @property
    def providers(self) -> list[Any]:
        """The providers, the App's and the plug-ins'."""
        return list(self._providers)

    @property
    def own_origin_paths(self) -> tuple[str, ...]:
        """The paths registered with :meth:`checks_own_origin`."""
        return tuple(self._own_origin)

    @property
    def describer(self) -> Describer | None:
        """The function registered with :meth:`describe_with`, if any."""
        return self._describer

    def gateways(self, container: Container) -> list[type]:
        """The gateway classes the App compiles: those left to it, then those of every
        :meth:`add_gateways` factory."""
        found = list(self._gateways)
        for factory in self._factories:
            found.extend(factory(container))
        return found

    def admission_built(self, admission: Admission) -> None:
        """Run the :meth:`on_admission` callbacks."""
        for callback in self._admission:
            callback(admission)

    def built(self, app: App) -> None:
        """Run the :meth:`on_built` callbacks."""
        for callback in self._built:
            callback(app)
