"""Re-encrypting every stored secret under the current SECRET_KEY (key rotation)."""

from __future__ import annotations

from ..crypto import SecretBox
from ..storage import endpoints as ep_q
from ..storage.database import Database


async def reencrypt_all(db: Database, old: SecretBox, new: SecretBox) -> int:
    """Decrypt with ``old`` (which knows every key in use), encrypt with ``new``; one transaction.

    Returns how many values were rewritten.
    """
    changed = 0
    async with db.write() as conn:
        for secret_id, endpoint_id, enc in await ep_q.all_secrets(conn):
            if new.needs_reencrypt(enc):
                plain = old.decrypt(enc, f"secret:{endpoint_id}")
                await ep_q.set_secret_enc(
                    conn, secret_id, new.encrypt(plain, f"secret:{endpoint_id}")
                )
                changed += 1
        for endpoint_id, enc in await ep_q.all_headers(conn):
            if new.needs_reencrypt(enc):
                plain = old.decrypt(enc, f"headers:{endpoint_id}")
                await ep_q.update_fields(
                    conn, endpoint_id, headers_enc=new.encrypt(plain, f"headers:{endpoint_id}")
                )
                changed += 1
    return changed
