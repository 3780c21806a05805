"""The tokenization key as a Dagster resource (see ``privacy/tokenization.py`` for the scheme)."""

import base64

import dagster as dg
from pydantic import PrivateAttr

from mlsec_platform.privacy.tokenization import TRANSIT_KEY, Tokenizer
from mlsec_platform.resources.audit import AuditResource
from mlsec_platform.resources.vault import VaultResource


class TokenizationResource(dg.ConfigurableResource):
    """Reads the current version of the transit ``tokenization`` key once per run, in memory only.

    The read is audited (``secret.read`` with the path and version, never the key). Reveal is
    not here: the pipeline's policy has no ``transit/decrypt``.
    """

    vault: dg.ResourceDependency[VaultResource]
    audit: dg.ResourceDependency[AuditResource]

    _tokenizer: Tokenizer | None = PrivateAttr(default=None)

    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            latest = int(self.vault.read(f"transit/keys/{TRANSIT_KEY}")["latest_version"])
            path = f"transit/export/encryption-key/{TRANSIT_KEY}/{latest}"
            keys = self.vault.read(path)["keys"]
            self.audit.secret_read(path, purpose="tokenization", key_version=latest)
            self._tokenizer = Tokenizer(base64.b64decode(keys[str(latest)]), latest)
        return self._tokenizer

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._tokenizer = None
