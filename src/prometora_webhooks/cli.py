"""The ``prometora-webhooks`` command: thin wrappers over the runtime and its services."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from . import gctune
from .config import ConfigError, Settings, load_settings
from .crypto import generate_key
from .domain.errors import AppError
from .domain.models import Endpoint
from .runtime import Runtime

T = TypeVar("T")

app = typer.Typer(
    help="Prometora Webhooks: signed, retried, logged webhooks for marketplace stores.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stores_app = typer.Typer(help="Manage stores.", no_args_is_help=True)
app.add_typer(stores_app, name="stores")
endpoints_app = typer.Typer(help="Manage a store's webhook endpoints.", no_args_is_help=True)
app.add_typer(endpoints_app, name="endpoints")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        _fail(str(exc))
        raise AssertionError from None  # unreachable


def _runtime(settings: Settings, *, pre_ping: bool = True) -> Runtime:
    try:
        return Runtime.build(settings, pre_ping=pre_ping)
    except ConfigError as exc:
        _fail(str(exc))
        raise AssertionError from None


def _migrate(settings: Settings, *, check_key: bool = True) -> None:
    """Check the secret key first (a clear error before touching the database), then migrate."""
    from .runtime import load_secret_box
    from .storage.migrate import upgrade

    if check_key:
        try:
            load_secret_box(settings)
        except ConfigError as exc:
            _fail(str(exc))
    try:
        upgrade(settings.database_url)
    except Exception as exc:  # a clear line, not a traceback, when the database is unreachable
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        _fail(
            f"cannot migrate the database (PROMETORA_WEBHOOKS_DATABASE_URL): "
            f"{exc.__class__.__name__}: {first}",
            1,
        )


def _logging() -> None:
    from . import logs

    logs.setup()


def _run_with_runtime(
    settings: Settings, fn: Callable[[Runtime], Awaitable[T]], *, pre_ping: bool = True
) -> T:
    async def main() -> T:
        rt = _runtime(settings, pre_ping=pre_ping)
        try:
            return await fn(rt)
        except AppError as exc:
            _fail(exc.message)
            raise AssertionError from None
        finally:
            await rt.close()

    return asyncio.run(main())


def _graceful_server_class() -> type:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """A SIGTERM/SIGINT that was handled by a clean shutdown exits with status 0
        (uvicorn re-raises the signal after shutting down, which exits with 143)."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return GracefulServer


def _serve(settings: Settings, host: str, port: int, with_worker: bool) -> None:
    import uvicorn

    from .api.app import create_app

    _logging()
    _migrate(settings)
    rt = _runtime(settings)
    rt.public_url = settings.public_url or f"http://{host}:{port}"
    api = create_app(rt, with_worker=with_worker)
    loop = "uvloop" if sys.platform != "win32" else "asyncio"
    config = uvicorn.Config(
        api,
        host=host,
        port=port,
        loop=loop,
        log_level="info",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.delivery_timeout) + 5,
    )
    gctune.settle()
    _graceful_server_class()(config).run()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
) -> None:
    """API, dashboard and delivery worker in one process (creates/migrates the database)."""
    _serve(_settings(), host, port, with_worker=True)


@app.command("api")
def api_command(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
) -> None:
    """API and dashboard only (run workers separately)."""
    _serve(_settings(), host, port, with_worker=False)


@app.command()
def worker(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics on this port")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface for --metrics-port")] = "127.0.0.1",
) -> None:
    """Delivery worker only. Run as many as you like against one database."""
    from .delivery.worker import Worker

    settings = _settings()
    _logging()
    _migrate(settings)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host)

    async def main(rt: Runtime) -> None:
        await rt.notifier.start()
        w = Worker(settings, rt.db, rt.box, rt.notifier)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, w.stop)
        logging.getLogger("prometora_webhooks").info("worker started")
        await w.run()
        logging.getLogger("prometora_webhooks").info("worker stopped")

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    gctune.settle()
    # No pool pre-ping: a claim or write that meets a connection the database dropped is
    # retried by the worker's loops (and the pool is refreshed), so the round trip per
    # transaction buys nothing here.
    _run_with_runtime(settings, main, pre_ping=False)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = _settings()
    _migrate(settings, check_key=False)
    typer.echo("database is up to date")


@stores_app.command("create")
def stores_create(
    name: Annotated[str, typer.Option(help="Store name")],
    plan: Annotated[str, typer.Option(help="Plan; webhooks work on 'business'")] = "business",
) -> None:
    """Create a store; prints its id and API key (shown once)."""
    settings = _settings()
    _migrate(settings)

    async def main(rt: Runtime) -> None:
        store, key = await rt.stores.create(name, plan)
        typer.echo(f"store_id: {store.id}")
        typer.echo(f"api_key:  {key}")

    _run_with_runtime(settings, main)


StoreOption = Annotated[str, typer.Option("--store", help="Store id (str_…)")]
FORMAT_HELP = "Message format: standard (signed JSON), slack or discord"


def _header_option(help_: str) -> Any:
    """``--header 'Name: value'``, repeatable (parsed by ``_parse_headers``)."""
    return typer.Option("--header", help=help_, show_default=False)


def _parse_headers(values: list[str] | None) -> dict[str, str] | None:
    """``--header 'Name: value'`` options as a mapping (None when none were given)."""
    if not values:
        return None
    headers: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            _fail(f"--header {item!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def _endpoint_line(ep: Endpoint) -> str:
    state = "enabled" if ep.enabled else f"disabled ({ep.disabled_reason or 'manual'})"
    return "\t".join((ep.id, ep.format, state, ",".join(ep.events), ep.url))


@endpoints_app.command("create")
def endpoints_create(
    store: StoreOption,
    url: Annotated[str, typer.Option(help="HTTPS URL that receives the events")],
    event: Annotated[
        list[str], typer.Option("--event", help="Event type to send (repeat for several)")
    ],
    format_: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "standard",
    description: Annotated[str, typer.Option(help="A note for the store owner")] = "",
    header: Annotated[
        list[str] | None,
        _header_option("Extra request header 'Name: value', stored encrypted (repeatable)"),
    ] = None,
) -> None:
    """Create an endpoint; prints its id and signing secret."""
    settings = _settings()
    headers = _parse_headers(header)
    _migrate(settings)

    async def main(rt: Runtime) -> None:
        ep, secret = await rt.endpoints.create(
            store, url, event, description=description, fmt=format_, headers=headers
        )
        typer.echo(f"endpoint_id: {ep.id}")
        typer.echo(f"secret:      {secret}")

    _run_with_runtime(settings, main)


@endpoints_app.command("list")
def endpoints_list(store: StoreOption) -> None:
    """List a store's endpoints: id, format, state, events, URL (tab-separated)."""
    settings = _settings()
    _migrate(settings)

    async def main(rt: Runtime) -> None:
        await rt.stores.get(store)  # an unknown store is an error, not an empty list
        after: str | None = None
        while True:
            page = await rt.endpoints.list(store, 100, after)
            for ep in page.data:
                typer.echo(_endpoint_line(ep))
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id

    _run_with_runtime(settings, main)


@endpoints_app.command("update")
def endpoints_update(
    endpoint_id: Annotated[str, typer.Argument(help="Endpoint id (we_…)")],
    store: StoreOption,
    url: Annotated[str | None, typer.Option(help="New URL", show_default=False)] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", help="Event types (replace the current ones; repeat)", show_default=False
        ),
    ] = None,
    format_: Annotated[
        str | None, typer.Option("--format", help=FORMAT_HELP, show_default=False)
    ] = None,
    description: Annotated[
        str | None, typer.Option(help="New description", show_default=False)
    ] = None,
    header: Annotated[
        list[str] | None,
        _header_option("Custom headers 'Name: value' (replace the current ones; repeat)"),
    ] = None,
    enabled: Annotated[
        bool | None,
        typer.Option(
            "--enable/--disable",
            help="Re-enable (resets the failure count) or disable",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Change an endpoint; prints it (id, format, state, events, URL)."""
    from .services.endpoints import EndpointChanges

    settings = _settings()
    changes = EndpointChanges(
        url=url,
        events=event or None,
        description=description,
        format=format_,
        headers=_parse_headers(header),
        enabled=enabled,
    )
    if changes == EndpointChanges():
        _fail(
            "nothing to change: give --url, --event, --format, --description, --header, "
            "--enable or --disable"
        )
    _migrate(settings)

    async def main(rt: Runtime) -> None:
        await rt.stores.get(store)
        ep = await rt.endpoints.update(store, endpoint_id, changes)
        typer.echo(_endpoint_line(ep))

    _run_with_runtime(settings, main)


@endpoints_app.command("delete")
def endpoints_delete(
    endpoint_id: Annotated[str, typer.Argument(help="Endpoint id (we_…)")],
    store: StoreOption,
) -> None:
    """Delete an endpoint with its pending deliveries and delivery log."""
    settings = _settings()
    _migrate(settings)

    async def main(rt: Runtime) -> None:
        await rt.stores.get(store)
        await rt.endpoints.delete(store, endpoint_id)
        typer.echo(f"deleted {endpoint_id}")

    _run_with_runtime(settings, main)


@app.command("dashboard-link")
def dashboard_link(store: Annotated[str, typer.Option(help="Store id (str_…)")]) -> None:
    """Print a one-time dashboard login URL (valid 15 minutes)."""
    settings = _settings()
    _migrate(settings)

    async def main(rt: Runtime) -> None:
        url, _ = await rt.dashboard_links.create(store, rt.public_url)
        typer.echo(url)

    _run_with_runtime(settings, main)


@app.command()
def publish(
    store: Annotated[str, typer.Option(help="Store id (str_…)")],
    type_: Annotated[str, typer.Option("--type", help="Event type, e.g. order.created")],
    data: Annotated[str, typer.Option(help="Event data as JSON, or @FILE")],
) -> None:
    """Publish an event to a store's subscribed endpoints."""
    settings = _settings()
    _migrate(settings)
    try:
        text = Path(data[1:]).read_text(encoding="utf-8") if data.startswith("@") else data
        payload = json.loads(text)
    except (OSError, ValueError) as exc:
        _fail(f"--data: {exc}")

    async def main(rt: Runtime) -> None:
        ev, _ = await rt.events.publish(store, type_, payload)
        typer.echo(ev.body.decode())

    _run_with_runtime(settings, main)


@app.command()
def listen(
    store: Annotated[str, typer.Option(help="Store id (str_…)")],
    forward_to: Annotated[str, typer.Option(help="Local URL to POST each event to")],
    api_url: Annotated[
        str | None, typer.Option(help="Prometora Webhooks API (default: PUBLIC_URL or :8000)")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Admin token or the store's API key "
            "(default: $PROMETORA_WEBHOOKS_API_KEY, then the admin token)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Forward a store's live events to a local URL, signed with a printed secret."""
    import os

    from .listen import Forwarder, ListenError

    settings = _settings()
    api = api_url or settings.public_url or "http://127.0.0.1:8000"
    tok = token or os.environ.get("PROMETORA_WEBHOOKS_API_KEY") or settings.admin_token
    if not tok:
        _fail("--token (or PROMETORA_WEBHOOKS_API_KEY / PROMETORA_WEBHOOKS_ADMIN_TOKEN) is needed")
        return
    fwd = Forwarder(api, tok, store, forward_to, lambda line: typer.echo(line))
    typer.echo(f"Your webhook signing secret is {fwd.secret}")
    typer.echo(f"Connecting to {api} for {store}'s events (Ctrl-C to stop)")

    async def main() -> str | None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runner = asyncio.create_task(fwd.run(stop))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({runner, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not runner.done():
            runner.cancel()
            return None
        try:
            runner.result()
        except ListenError as exc:
            return str(exc)
        return None

    problem = asyncio.run(main())
    if problem is not None:
        _fail(problem, 1)


@app.command("generate-key")
def generate_key_command() -> None:
    """Print a new random SECRET_KEY (base64 of 32 bytes)."""
    typer.echo(generate_key())


@app.command("rotate-key")
def rotate_key(
    new_key: Annotated[
        str | None, typer.Option(help="The new key (default: generate one)", show_default=False)
    ] = None,
) -> None:
    """Re-encrypt every stored secret under a new SECRET_KEY and print that key.

    Without downtime: run every process with SECRET_KEY="NEW,OLD" (the first key encrypts,
    all decrypt), then run `rotate-key` with that same setting, then drop OLD.
    """
    from .crypto import SecretBox, parse_key
    from .runtime import key_file, load_secret_box
    from .services.keys import reencrypt_all
    from .storage.database import Database

    settings = _settings()
    _migrate(settings)
    old = load_secret_box(settings)
    listed = (settings.secret_key or "").count(",") > 0
    if new_key is None and listed:
        new_text = (settings.secret_key or "").split(",")[0].strip()
    else:
        new_text = new_key or generate_key()
    try:
        target = SecretBox(parse_key(new_text))
    except ValueError as exc:
        _fail(f"--new-key: {exc}")
        raise AssertionError from None
    box = SecretBox(parse_key(new_text), (*old.keys(),))

    async def main() -> int:
        db = Database(settings.database_url)
        try:
            return await reencrypt_all(db, box, target)
        finally:
            await db.dispose()

    changed = asyncio.run(main())
    path = key_file(settings)
    if settings.secret_key is None and path is not None:
        tmp = path.with_name(path.name + ".new")
        tmp.write_text(new_text + "\n", encoding="ascii")
        tmp.chmod(0o600)
        tmp.replace(path)
        typer.echo(f"re-encrypted {changed} secrets; the new key is in {path}", err=True)
    else:
        typer.echo(
            f"re-encrypted {changed} secrets; set PROMETORA_WEBHOOKS_SECRET_KEY to the key below",
            err=True,
        )
    typer.echo(new_text)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
