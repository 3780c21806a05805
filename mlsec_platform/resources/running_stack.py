"""Resources whose server addresses may be left to the stack that runs when they are used.

The code location loads where no stack need run (a fresh clone, `dagster definitions validate`,
a code server started before `mlsec up`), so its resources cannot know yet where the servers
answer. An address field left unset (None) means "the running stack's": it is read from the
settings (``<state_dir>/stack.json``, or ``MLSEC_*`` in the `stack` profile) when a run or a
sensor sets the resource up, never at import. With no stack running, that set-up fails with a
:class:`ConfigurationError` saying what to start; nothing falls back to a default address.
Values passed explicitly are used as given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Self

import dagster as dg
from pydantic import Field

from mlsec_platform.errors import ConfigurationError
from mlsec_platform.settings import get_settings


def stack_address(what: str) -> Any:
    """An address field that, left unset, is the running stack's (shown so in the UI)."""
    return Field(default=None, description=f"{what}; unset: the running stack's, read at set-up")


class StackAddressedResource(dg.ConfigurableResource):
    """Base of the resources that reach a server of the stack.

    Subclasses name their address fields in ``stack_addresses`` (field -> attribute of
    :class:`~mlsec_platform.settings.Endpoints`) and read an address through :meth:`address`.
    """

    #: Address field -> the ``Endpoints`` attribute it takes when left unset.
    stack_addresses: ClassVar[Mapping[str, str]] = {}

    def unresolved_addresses(self) -> list[str]:
        """The address fields left to the running stack."""
        return [name for name in self.stack_addresses if getattr(self, name) is None]

    def on_running_stack(self) -> Self:
        """This resource with every unset address taken from the running stack (itself when
        none is unset). Raises ConfigurationError when no stack runs."""
        missing = self.unresolved_addresses()
        if not missing:
            return self
        try:
            endpoints = get_settings().endpoints()
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{type(self).__name__} takes its {', '.join(missing)} from the running stack, "
                f"and there is none: {exc}"
            ) from None
        found = {name: getattr(endpoints, self.stack_addresses[name]) for name in missing}
        # A new object, not a copy: its private state (tokens, leases, locks) starts empty.
        return type(self)(**{**dict(self), **found})

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[Self]:
        """What a run or a sensor gets: this resource on the running stack, set up and torn
        down as Dagster would do it for the resource itself."""
        resource = self.on_running_stack()
        resource.setup_for_execution(context)
        try:
            yield resource
        finally:
            resource.teardown_after_execution(context)

    def address(self, name: str) -> Any:
        """The value of address field ``name``; fails closed when it was left to the running
        stack and this object was not set up by a run (use :meth:`on_running_stack` then)."""
        value = getattr(self, name)
        if value is None:
            raise ConfigurationError(
                f"{type(self).__name__}.{name} is the running stack's and is read when a run "
                "sets the resource up; outside a run, call on_running_stack() first"
            )
        return value
