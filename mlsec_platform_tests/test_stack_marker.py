"""The `stack` marker's guard (conftest.py): a test not marked `stack` cannot start a server."""

import pytest

from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.servers.base import ManagedServer
from mlsec_platform.stack.supervisor import Supervisor


class _NeverStarted(ManagedServer):
    name = "never-started"

    def command(self) -> list[str]:
        raise AssertionError("the guard lets no command run")

    def is_healthy(self) -> bool:
        return False


def test_a_server_started_outside_a_stack_test_fails_that_test(request):
    assert request.node.get_closest_marker("stack") is None
    server = _NeverStarted(PlatformSettings(), ports={})
    with pytest.raises(RuntimeError, match="never-started started by a test not marked `stack`"):
        server.start()


@pytest.mark.parametrize("server_type", [ManagedServer, *Supervisor.SERVER_TYPES])
def test_every_way_to_start_a_server_is_guarded(server_type):
    """Server classes with a start of their own (PostgreSQL's runs pg_ctl) are guarded too."""
    start = next(vars(c)["start"] for c in server_type.__mro__ if "start" in vars(c))
    assert start.__name__ == "start_in_a_stack_test", server_type.__name__
