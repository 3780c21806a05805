"""Access policy: the engine that decides (``engine``) and the policy files it decides by."""
