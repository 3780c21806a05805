"""The broker's routes, one router per concern; ``broker_api.app`` includes them."""
