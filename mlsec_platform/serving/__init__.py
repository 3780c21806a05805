"""What the platform's HTTP services share: serving an app with uvicorn, and their clients."""
