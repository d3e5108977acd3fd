"""Wiring: builds the concrete parts from Settings. Only this module and the CLI do so."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, Settings
from .crypto import KeyError_, SecretBox, load_or_create_key_file, parse_key
from .delivery.guard import check_host
from .domain.catalog import Catalog
from .services.auth import AuthService
from .services.dashboard import DashboardLinks
from .services.deliveries import DeliveryService
from .services.endpoints import EndpointService
from .services.events import EventService
from .services.notify import Notifier, PgNotifier
from .services.stores import StoreService
from .storage.database import Database, listen_dsn


def key_file(settings: Settings) -> Path | None:
    """The generated key kept beside a SQLite database when SECRET_KEY is not set."""
    path = settings.sqlite_path
    return path.with_name(path.name + ".key") if path is not None else None


def load_secret_box(settings: Settings) -> SecretBox:
    """SECRET_KEY may list several keys, comma-separated: the first encrypts, all decrypt
    (that is how a key is rotated without downtime; see ``rotate-key``)."""
    text = settings.secret_key
    if text is None:
        path = settings.sqlite_path
        if not settings.is_sqlite:
            raise ConfigError(
                "PROMETORA_WEBHOOKS_SECRET_KEY is required with PostgreSQL "
                "(create one with: prometora-webhooks generate-key)"
            )
        if path is None:
            from .crypto import generate_key

            text = generate_key()
        else:
            text = load_or_create_key_file(path.with_name(path.name + ".key"))
    try:
        keys = [parse_key(part) for part in text.split(",") if part.strip()]
        if not keys:
            raise KeyError_("must be base64 of 32 random bytes")
        return SecretBox(keys[0], tuple(keys[1:]))
    except KeyError_ as exc:
        raise ConfigError(f"invalid PROMETORA_WEBHOOKS_SECRET_KEY: {exc}") from None


@dataclass
class Runtime:
    settings: Settings
    db: Database
    box: SecretBox
    catalog: Catalog
    notifier: Notifier
    auth: AuthService
    stores: StoreService
    endpoints: EndpointService
    events: EventService
    deliveries: DeliveryService
    dashboard_links: DashboardLinks
    public_url: str = "http://127.0.0.1:8000"

    @classmethod
    def build(cls, settings: Settings, *, pre_ping: bool = True) -> Runtime:
        db = Database(settings.database_url, pre_ping=pre_ping)
        box = load_secret_box(settings)
        catalog = Catalog.load()
        notifier = Notifier() if db.is_sqlite else PgNotifier(listen_dsn(db.url))
        return cls(
            settings=settings,
            db=db,
            box=box,
            catalog=catalog,
            notifier=notifier,
            auth=AuthService(db, settings.admin_token),
            stores=StoreService(db),
            endpoints=EndpointService(
                db,
                box,
                catalog,
                check_host,
                allow_http=settings.allow_http,
                allow_private=settings.allow_private_networks,
            ),
            events=EventService(db, catalog, notifier),
            deliveries=DeliveryService(db, catalog, notifier),
            dashboard_links=DashboardLinks(db),
            public_url=settings.public_url or "http://127.0.0.1:8000",
        )

    async def close(self) -> None:
        await self.events.close()
        await self.notifier.close()
        await self.db.dispose()
