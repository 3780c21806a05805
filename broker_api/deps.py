"""The typed dependencies of the broker's routes: who asks, what the policy decides, the
in-flight slot and the executor hop.

The order of a request: its inputs are validated, the caller is authenticated and counted
against the rate limit, the policy decides (resolving the dataset once: the decision carries
the catalog entry), and the blocking work runs in one hop to the broker's executor, which
seals the finished response there (see :mod:`broker_api.middleware`).

FastAPI calls a route's sub-dependencies before it validates the route's own parameters, and
never calls a dependency whose own parameters are invalid. So a route's inputs are parameters
of the dependency that authorizes it (:class:`Authorized`), which authenticates inside: a
request with invalid inputs is answered 400 without using a rate-limit token or naming its
caller in the audit event. Everything here runs on the event loop and does no blocking work,
except verifying a token the verifier has not seen lately, which goes to the executor.

A data route has that one dependency and no other: FastAPI spends tens of microseconds per
dependency per request (measured), so the executor hop is the authorized request's own
(:meth:`Authorized.answer`), not a dependency of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request
from fastapi.responses import Response

from broker_api import receipts
from broker_api.errors import LimitReached, PolicyDenied, Unauthenticated
from broker_api.lineage import AssetLineage, asset_key_of
from broker_api.policy.decision import Decision
from broker_api.principal import Principal
from broker_api.responses import json_response
from broker_api.services import BrokerServices
from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.identities.tokens import InvalidToken, check_presented
from mlsec_platform.serving.tls import presented_certificate

T = TypeVar("T")


async def get_services(request: Request) -> BrokerServices:
    """The broker's services, held by the app (``app.state.services``)."""
    return request.app.state.services


Services = Annotated[BrokerServices, Depends(get_services)]


async def authenticate(request: Request) -> Principal:
    """The caller of the request: a valid bearer token presented over a connection with the
    client certificate it is bound to (401), within its rate limit (429)."""
    services: BrokerServices = request.app.state.services
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else None
    try:
        principal = services.verifier.cached(token)
        if principal is None:  # a signature to check, maybe keys to fetch: off the loop
            loop = asyncio.get_running_loop()
            principal = await loop.run_in_executor(
                services.executor, services.verifier.verify, token
            )
        if principal.certificate is None:
            raise InvalidToken("token is not bound to a client certificate")
        check_presented(principal.certificate, presented_certificate(request.scope))
    except InvalidToken as exc:
        services.metrics.deny("identity")
        raise Unauthenticated(str(exc)) from None
    request.state.audit.update(principal.audit_fields())
    services.watch.check(principal)  # a detection's hold on the caller (memory only)
    wait = await services.limiter.admit(principal, services.policy.limits_for(principal))
    if wait is not None:
        services.metrics.limit("rate")
        raise LimitReached("rate limit reached", retry_after=int(wait))
    return principal


#: The authenticated caller, for a route without inputs of its own.
CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def decide(
    request: Request, principal: Principal, dataset: str, columns: Sequence[str], **asked: Any
) -> Decision:
    """The policy's decision on ``columns`` of ``dataset`` (``asked``: the engine's keyword
    arguments), recorded in the request's audit event; a denial is raised."""
    services: BrokerServices = request.app.state.services
    decision = services.policy.decide(principal, dataset, columns, **asked)
    return _enforce(request, services, dataset, decision)


def decide_dataset(request: Request, principal: Principal, dataset: str) -> Decision:
    """The policy's decision on whether the caller may see ``dataset`` at all (its key), recorded
    in the request's audit event; a denial is raised."""
    services: BrokerServices = request.app.state.services
    return _enforce(request, services, dataset, services.policy.decide_dataset(principal, dataset))


def _enforce(
    request: Request, services: BrokerServices, dataset: str, decision: Decision
) -> Decision:
    audit = request.state.audit
    audit.update(
        dataset=dataset,
        decision_id=decision.id,
        policy_ids=list(decision.policy_ids),
        policy_version=decision.policy_version,
    )
    if not decision.allowed:
        services.metrics.deny("policy")
        raise PolicyDenied(decision.reason, status=decision.status)
    row_filter = decision.row_filter
    audit.update(
        masks=decision.masks.audit(),
        row_filter=None if row_filter is None else row_filter.audit(),
    )
    return decision


class Authorized(Generic[T]):
    """A request the policy allows: its validated input (``asked``), its caller and the
    decision, with what serving it needs: the dataset the decision resolved, its lineage and
    an in-flight slot. Each route's dependency builds one from the route's own inputs."""

    __slots__ = ("request", "services", "principal", "decision", "asked")

    def __init__(
        self, request: Request, principal: Principal, decision: Decision, asked: T
    ) -> None:
        self.request = request
        self.services: BrokerServices = request.app.state.services
        self.principal = principal
        self.decision = decision
        self.asked = asked

    @property
    def dataset(self) -> DatasetSpec:
        """The catalog entry the decision resolved (an allowed decision always has one)."""
        return self.decision.spec  # type: ignore[return-value]

    @property
    def audit(self) -> dict[str, Any]:
        """This request's audit event fields (the middleware records them)."""
        return self.request.state.audit

    @property
    def request_id(self) -> str:
        return self.request.state.request_id

    def lineage(self, version: int | None) -> AssetLineage:
        """The lineage of ``version`` of the dataset (None: its latest materialization), if no
        erasure cut it off (else VersionErased, 410)."""
        key, lineage, cuts = (
            asset_key_of(self.dataset),
            self.services.lineage,
            self.services.erasure_cuts,
        )
        # An erasure's cut beats every cache: a version before it is never served (410).
        if version is not None:
            cuts.check(self.dataset, version)
        lin = lineage.latest(key) if version is None else lineage.at_version(key, version)
        self.audit.update(version=lin.delta_version, run_id=lin.run_id)
        cuts.check(self.dataset, lin.delta_version)
        receipts.read(self.request, lin)
        return lin

    async def answer(self, answer: Callable[[Authorized[T]], Any]) -> Response:
        """``answer(self)``, the blocking work of serving the request, in its one executor
        hop (:func:`offload`)."""
        return await offload(self.request, answer, self)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One of the caller's in-flight slots for the block, or 429."""
        services, limits = self.services, self.decision.limits
        with services.concurrency.slot(self.principal.subject, limits.concurrency) as ok:
            if not ok:
                services.metrics.limit("concurrency")
                raise LimitReached("too many requests in flight", retry_after=1)
            yield


async def offload(request: Request, answer: Callable[..., Any], *args: Any) -> Response:
    """The request's one hop to the broker's executor: ``answer(*args)`` runs there, and its
    JSON body is sealed there as the response (its audit event starts committing from that
    thread, not after the hop back; a plain executor hop also costs the loop less than the
    default thread limiter). A request that asks for a lineage receipt gets it signed there too
    (:mod:`broker_api.receipts`)."""
    services = request.app.state.services
    ask = await receipts.asked(request, services.receipts)
    return await asyncio.get_running_loop().run_in_executor(
        services.executor, _answered, request, answer, args, ask
    )


def response_headers(request: Request) -> dict[str, str]:
    """Headers the answer of ``request`` will carry besides its body's (e.g. what is left of a
    disclosure budget); filled while it is served."""
    return request.scope["state"].setdefault("response_headers", {})


def _answered(
    request: Request,
    answer: Callable[..., Any],
    args: tuple[Any, ...],
    ask: receipts.Asked | None,
) -> Response:
    body = answer(*args)
    response = json_response(body, headers=request.scope["state"].get("response_headers"))
    if ask is None:
        request.state.seal(response)  # final: its audit event starts committing now
        return response
    receipt = receipts.prepare(request, response, ask, request.app.state.services.receipts)
    request.state.seal(response)  # its audit event, naming the receipt, starts committing now
    # The signature is made while the event commits (the answer waits for that commit anyway,
    # and signing releases the GIL): off the answer's path. Nothing left can fail, so the
    # sealed answer never leaves without the receipt it was asked for.
    receipts.sign_into(response, receipt)
    return response
