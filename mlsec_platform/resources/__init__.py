"""Typed Dagster resources: each talks to one server with Vault-issued credentials."""
