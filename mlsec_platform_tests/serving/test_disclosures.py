"""The in-memory disclosure store keeps the shared store's rules (holds placed once)."""

from mlsec_platform.serving.disclosures import LocalDisclosures


def test_a_hold_in_force_is_not_placed_again_but_an_expired_one_is() -> None:
    """Two replicas crossing a threshold together raised two alerts: the second hold now
    finds the first in force and is not placed (the shared store's SQL does the same)."""
    store = LocalDisclosures()
    assert store.hold("ana", "suspend", "entity_enumeration", None) is not None
    assert store.hold("ana", "throttle", "pagination_sweep", 60.0) is None
    assert [h.action for h in store.holds()] == ["suspend"]
    assert store.hold("bob", "throttle", "pagination_sweep", -1.0) is not None  # expired
    assert store.hold("bob", "throttle", "pagination_sweep", 60.0) is not None
