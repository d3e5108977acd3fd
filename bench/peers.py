"""Scenario 6, peers: the end-to-end workload against two Python webhook senders installed from
PyPI into a throwaway virtualenv inside the temp folder (research/peers.md):

* django-webhook 0.0.15 (Celery + Redis; ``celery worker -c 4``), on PostgreSQL;
* django-outbound-webhooks 0.4.0 (PostgreSQL outbox; 4 ``manage.py deliver_events`` relays).

Both get a small Django project written into the temp folder, with one HTTP view that publishes
an event (django-webhook: saves an ``Order``, whose post_save signal queues one Celery task per
webhook; django-outbound-webhooks: ``fire()`` of an ``OrderPlaced`` event in a transaction),
served by gunicorn (2 processes x 2 threads). The same publisher (aiohttp clients) posts the same
event data to that view as to our API; the same receiver (HTTPS, on its own core) checks their
signatures (Standard Webhooks for django-outbound-webhooks, django-webhook's own HMAC scheme).
Our service runs the same workload (``api`` + 2 ``worker`` processes, PostgreSQL) in the same
run, and the report gives the ratios. Redis comes from apt when it is missing. A peer that
cannot be installed or run is reported with the reason.

The workload is the end-to-end scenario's (10 endpoints x 5,000 events, 50 publishing
clients; 100 events with --quick). The peers deliver tens of events per second, so a peer's run
stops ``--peer-seconds`` (60 by default) after its first publish, or when its publisher has had
all 5,000 answers if that is later (the peers take 100-150 s to accept them): its rate is what
arrived by then, over the time from the first publish to the last of those receipts, the same
definition as ours, which always runs to its last delivery. ``--events 100`` is the workload of
earlier versions, where every peer finishes, and where our figure is mostly the first second's
ramp-up.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from . import procs
from .common import random_run_id, ratio
from .context import Context
from .service import Service
from .workload import publish_and_collect

PACKAGES = {
    "djw": ["django-webhook==0.0.15", "celery[redis]"],
    "dow": ["django-outbound-webhooks==0.4.0", "standardwebhooks"],
    "common": ["psycopg[binary]", "gunicorn"],
}
DELIVERY_PROCS = 4
PEER_SECONDS = 60.0  # default of --peer-seconds

SETTINGS = """\
import os
SECRET_KEY = "bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "demo.urls"
MIDDLEWARE = []
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {{"default": {{
    "ENGINE": "django.db.backends.postgresql", "NAME": os.environ["BENCH_DB"],
    "USER": "postgres", "HOST": "127.0.0.1", "PORT": os.environ["BENCH_PG_PORT"],
}}}}
LOGGING = {{"version": 1, "disable_existing_loggers": False,
           "handlers": {{"console": {{"class": "logging.StreamHandler"}}}},
           "root": {{"handlers": ["console"], "level": "WARNING"}}}}
{extra}
"""

URLS = """\
from django.urls import path
from shop.views import publish
urlpatterns = [path("publish", publish)]
"""

DJW = {
    "extra": textwrap.dedent(
        """\
        INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth",
                          "django_webhook", "shop"]
        DJANGO_WEBHOOK = {"MODELS": ["shop.Order"]}
        CELERY_BROKER_URL = os.environ["BENCH_REDIS_URL"]
        """
    ),
    "demo/__init__.py": "from .celery import app as celery_app\n",
    "demo/celery.py": textwrap.dedent(
        """\
        import os
        from celery import Celery
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
        app = Celery("demo")
        app.config_from_object("django.conf:settings", namespace="CELERY")
        app.autodiscover_tasks(["django_webhook"])
        """
    ),
    "shop/models.py": textwrap.dedent(
        """\
        from django.db import models
        class Order(models.Model):
            key = models.CharField(max_length=64)
            data = models.JSONField()
        """
    ),
    "shop/views.py": textwrap.dedent(
        """\
        import json
        from django.http import JsonResponse
        from django.views.decorators.csrf import csrf_exempt
        from shop.models import Order

        @csrf_exempt
        def publish(request):
            body = json.loads(request.body)
            order = Order.objects.create(key=body["data"]["id"], data=body["data"])
            return JsonResponse({"id": order.pk}, status=202)
        """
    ),
    "setup_bench.py": textwrap.dedent(
        """\
        import json, sys, django
        django.setup()
        from django_webhook.models import Webhook, WebhookSecret, WebhookTopic
        topic, _ = WebhookTopic.objects.get_or_create(name="shop.Order/create")
        for url, token in json.load(open(sys.argv[1])):
            wh = Webhook.objects.create(url=url)
            wh.topics.set([topic])
            WebhookSecret.objects.create(webhook=wh, token=token)
        print("ok")
        """
    ),
}

DOW = {
    "extra": textwrap.dedent(
        """\
        INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth",
                          "django_domain_events", "django_outbound_webhooks", "shop"]
        DJANGO_OUTBOUND_WEBHOOKS = {"ALLOW_PRIVATE_ADDRESSES": True}
        """
    ),
    "demo/__init__.py": "",
    "shop/models.py": "",
    "shop/events.py": textwrap.dedent(
        """\
        from dataclasses import dataclass
        from django_domain_events import event

        @event
        @dataclass(frozen=True, slots=True)
        class OrderPlaced:  # the codec takes flat scalars: the order, flattened
            id: str
            total: int
            currency: str
            customer_email: str
            customer_name: str
            item1_listing_id: str
            item1_title: str
            item1_quantity: int
            item1_price: int
            item2_listing_id: str
            item2_title: str
            item2_quantity: int
            item2_price: int
            note: str
        """
    ),
    "shop/views.py": textwrap.dedent(
        """\
        import json
        from django.db import transaction
        from django.http import JsonResponse
        from django.views.decorators.csrf import csrf_exempt
        from django_domain_events import fire
        from shop.events import OrderPlaced

        @csrf_exempt
        def publish(request):
            d = json.loads(request.body)["data"]
            i1, i2 = d["items"][0], d["items"][1]
            ev = OrderPlaced(
                id=d["id"], total=d["total"], currency=d["currency"],
                customer_email=d["customer"]["email"], customer_name=d["customer"]["name"],
                item1_listing_id=i1["listing_id"], item1_title=i1["title"],
                item1_quantity=i1["quantity"], item1_price=i1["price"],
                item2_listing_id=i2["listing_id"], item2_title=i2["title"],
                item2_quantity=i2["quantity"], item2_price=i2["price"], note=d["note"],
            )
            with transaction.atomic():
                event_id = fire(ev)
            return JsonResponse({"id": event_id}, status=202)
        """
    ),
    "setup_bench.py": textwrap.dedent(
        """\
        import json, sys, django
        django.setup()
        from django_outbound_webhooks import register_endpoint
        for i, (url, secret) in enumerate(json.load(open(sys.argv[1]))):
            register_endpoint(name=f"bench {i}", url=url, secret=secret,
                              event_names=["shop.OrderPlaced"])
        print("ok")
        """
    ),
}


def _write_project(root: Path, files: dict[str, str]) -> None:
    for d in ("demo", "shop"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "shop/__init__.py").write_text("")
    (root / "demo/settings.py").write_text(SETTINGS.format(extra=files["extra"]))
    (root / "demo/urls.py").write_text(URLS)
    (root / "demo/wsgi.py").write_text(
        "import os\nfrom django.core.wsgi import get_wsgi_application\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'demo.settings')\n"
        "application = get_wsgi_application()\n"
    )
    (root / "manage.py").write_text(
        "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'demo.settings')\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(sys.argv)\n"
    )
    for name, text in files.items():
        if name != "extra":
            (root / name).write_text(text)


def _venv(ctx: Context) -> tuple[Path, dict[str, str]]:
    """The peers' virtualenv (in the temp folder unless --peers-venv names one)."""
    given = ctx.opt("peers_venv", None)
    venv = Path(given) if given else ctx.workdir / "peers-venv"
    py = venv / "bin" / "python"
    env = dict(os.environ)
    for k in ("PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(k, None)
    env["PIP_CACHE_DIR"] = str(ctx.workdir / "pip-cache")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if not py.exists():
        procs.log(f"peers: creating a virtualenv and installing from PyPI into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        pkgs = [p for group in PACKAGES.values() for p in group]
        r = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", *pkgs],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if r.returncode != 0:
            raise RuntimeError(f"pip install failed: {r.stderr[-1500:]}")
    return venv, env


def _versions(venv: Path) -> dict[str, str]:
    r = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    wanted = {
        "django",
        "django-webhook",
        "django-outbound-webhooks",
        "django-domain-events",
        "celery",
        "redis",
        "kombu",
        "requests",
        "httpx2",
        "gunicorn",
        "psycopg",
    }
    try:
        return {
            p["name"]: p["version"] for p in json.loads(r.stdout) if p["name"].lower() in wanted
        }
    except ValueError:
        return {}


def _redis(ctx: Context) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server")
    if exe is None:
        if os.geteuid() != 0:
            raise RuntimeError("redis-server is missing and installing it needs root (apt-get)")
        procs.log("peers: installing redis-server with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True, env=env)
        r = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "redis-server"],
            capture_output=True,
            text=True,
            env=env,
        )
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError(f"apt-get install redis-server failed: {r.stderr[-500:]}")
    port = procs.free_port()
    rdir = ctx.workdir / "redis"
    rdir.mkdir(exist_ok=True)
    p = procs.spawn(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(rdir),
            "--daemonize",
            "no",
        ],
        cpus=ctx.cores.others,
        log_path=rdir / "redis.log",
    )
    procs.wait_until(lambda: _port_open(port) or p.poll() is not None, 20, "redis")
    if p.poll() is not None:
        raise RuntimeError("redis-server exited at start")
    return p, f"redis://127.0.0.1:{port}/0"


def _trust_ca(py: str, pem: str) -> None:
    """django-webhook sends with ``Session().send(req)``, which ignores REQUESTS_CA_BUNDLE, so
    the receiver's test CA goes into the (throwaway) virtualenv's certifi bundle instead, as an
    operator would trust a private CA system-wide."""
    where = subprocess.run(
        [py, "-c", "import certifi; print(certifi.where())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    bundle = Path(where)
    if pem.strip() not in bundle.read_text():
        with bundle.open("a") as fh:
            fh.write("\n# prometora-webhooks benchmark receiver CA\n" + pem)


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _run_peer(
    ctx: Context, which: str, venv: Path, base_env: dict[str, str], E: int, M: int
) -> dict[str, Any]:
    root = ctx.workdir / f"peer-{which}-{ctx.next_id()}"
    _write_project(root, DJW if which == "djw" else DOW)
    pg = ctx.pg()
    db = pg.create_database()
    env = dict(base_env)
    env.update(
        BENCH_DB=db,
        BENCH_PG_PORT=str(pg.port),
        DJANGO_SETTINGS_MODULE="demo.settings",
        PYTHONPATH=str(root),
        REQUESTS_CA_BUNDLE=str(ctx.certs.ca),  # requests (django-webhook)
        SSL_CERT_FILE=str(ctx.certs.ca),  # httpx2 (django-outbound-webhooks)
        PYTHONDONTWRITEBYTECODE="1",
    )
    started: list[subprocess.Popen[bytes]] = []
    redis_p = None
    py = str(venv / "bin" / "python")
    try:
        if which == "djw":
            redis_p, env["BENCH_REDIS_URL"] = _redis(ctx)
            started.append(redis_p)
            _trust_ca(py, ctx.certs.ca.read_text())

        def manage(*args: str) -> None:
            r = subprocess.run(
                [py, "manage.py", *args],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if r.returncode != 0:
                raise RuntimeError(f"manage.py {' '.join(args)} failed: {r.stderr[-1500:]}")

        if which == "djw":
            manage("makemigrations", "shop")
        manage("migrate", "-v", "0")
        rx = ctx.receiver()
        paths = [f"/{which}/{i}" for i in range(E)]
        if which == "djw":
            creds = [(rx.url(p), "bench-token-" + secrets.token_hex(16)) for p in paths]
            rx.configure(verify={p: ["djw", tok] for p, (_, tok) in zip(paths, creds, strict=True)})
        else:
            creds = [
                (rx.url(p), "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
                for p in paths
            ]
            rx.configure(verify={p: ["sw", s] for p, (_, s) in zip(paths, creds, strict=True)})
        (root / "creds.json").write_text(json.dumps(creds))
        r = subprocess.run(
            [py, "setup_bench.py", "creds.json"], cwd=root, env=env, capture_output=True, text=True
        )
        if r.returncode != 0:
            raise RuntimeError(f"endpoint setup failed: {r.stderr[-1500:]}")
        port = procs.free_port()
        web = procs.spawn(
            [
                str(venv / "bin" / "gunicorn"),
                "demo.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "2",
                "--threads",
                "2",
                "--log-level",
                "warning",
            ],
            cpus=ctx.cores.others,
            env=env,
            cwd=root,
            log_path=root / "gunicorn.log",
        )
        started.append(web)
        if which == "djw":
            workers = [
                procs.spawn(
                    [
                        str(venv / "bin" / "celery"),
                        "-A",
                        "demo",
                        "worker",
                        "-c",
                        str(DELIVERY_PROCS),
                        "-l",
                        "info",
                    ],
                    cpus=ctx.cores.others,
                    env=env,
                    cwd=root,
                    log_path=root / "celery.log",
                )
            ]
            procs.wait_until(
                lambda: (
                    "ready." in (root / "celery.log").read_text(errors="replace")
                    or workers[0].poll() is not None
                ),
                120,
                "celery ready",
                interval=0.2,
            )
            if workers[0].poll() is not None:
                raise RuntimeError("celery exited: " + (root / "celery.log").read_text()[-1500:])
        else:
            workers = [
                procs.spawn(
                    [py, "manage.py", "deliver_events"],
                    cpus=ctx.cores.others,
                    env=env,
                    cwd=root,
                    log_path=root / f"relay{i}.log",
                )
                for i in range(DELIVERY_PROCS)
            ]
            time.sleep(3)  # the relays log nothing when ready; give them their imports
            for w in workers:
                if w.poll() is not None:
                    raise RuntimeError("relay exited: " + (root / "relay0.log").read_text()[-1500:])
        started.extend(workers)
        procs.wait_until(lambda: _port_open(port), 60, "gunicorn", interval=0.1)
        window = float(ctx.opt("peer_seconds", PEER_SECONDS))
        out = _measure(ctx, [f"http://127.0.0.1:{port}/publish"], {}, E, M, dict, window)
        out["processes"] = {
            "publish": "gunicorn, 2 processes x 2 threads",
            "delivery": f"celery prefork -c {DELIVERY_PROCS} + redis"
            if which == "djw"
            else f"{DELIVERY_PROCS} x manage.py deliver_events",
        }
        return out
    except Exception:
        for name in ("celery.log", "relay0.log", "gunicorn.log"):
            with contextlib.suppress(OSError):
                procs.log(f"peers[{which}] {name}:\n" + (root / name).read_text()[-1500:])
        raise
    finally:
        for p in reversed(started):
            procs.stop(p, 30)
        pg.drop_database(db)


def _measure(
    ctx: Context,
    targets: list[str],
    headers: dict[str, str],
    E: int,
    M: int,
    pids: Any,
    window: float | None = None,
) -> dict[str, Any]:
    run = random_run_id()
    warm = publish_and_collect(
        ctx,
        targets=targets,
        per_event=E,
        events=5,
        clients=5,
        run=run,
        headers=headers,
        timeout=300,
    )
    out = publish_and_collect(
        ctx,
        targets=targets,
        per_event=E,
        events=M,
        clients=int(ctx.opt("clients", 50)),
        run=run,
        first_index=5,
        headers=headers,
        timeout=float(ctx.opt("peer_timeout", 600)),
        idle=60,
        pids=pids,
        window=window,
    )
    out["warmup_delivered"] = warm["delivered"]
    return out


def _ours(ctx: Context, E: int, M: int) -> dict[str, Any]:
    svc = Service(ctx, "postgresql", workers=2, name="peers-ours").start()
    try:
        stores, _ = svc.setup_endpoints([f"/ours/{i}" for i in range(E)])
        targets = [f"{svc.base_url}/v1/stores/{sid}/events" for sid in stores]
        headers = {"authorization": "Bearer " + svc.env["PROMETORA_WEBHOOKS_ADMIN_TOKEN"]}
        out = _measure(ctx, targets, headers, E, M, svc.pids)
        out["processes"] = {
            "publish": "prometora-webhooks api",
            "delivery": "2 x prometora-webhooks worker",
        }
        out["peak_rss_mb"] = svc.peak_rss_mb()
        return out
    finally:
        svc.stop()


def run(ctx: Context) -> dict[str, Any]:
    E = int(ctx.opt("endpoints", 10))
    M = int(ctx.opt("events", 100 if ctx.quick else 5000))
    only = set((ctx.opt("only", "") or "ours,djw,dow").split(","))
    res: dict[str, Any] = {
        "config": {
            "db": "postgresql (all three)",
            "endpoints": E,
            "events": M,
            "clients": int(ctx.opt("clients", 50)),
            "peer_seconds": float(ctx.opt("peer_seconds", PEER_SECONDS)),
            "note": "same publisher, same receiver, same event data; deliveries/s from the first "
            "publish to the last receipt; a peer's receipts are counted until peer_seconds after "
            "its first publish, or until its publisher has every answer if that is later",
        }
    }
    if "ours" in only:
        procs.log(f"peers: ours, {M} events x {E} endpoints")
        res["ours"] = _ours(ctx, E, M)
    try:
        venv, env = _venv(ctx)
        res["versions"] = _versions(venv)
    except Exception as exc:
        venv = None
        res["install_error"] = f"{exc}"[:2000]
    for key, which in (("django_webhook", "djw"), ("django_outbound_webhooks", "dow")):
        if which not in only:
            continue
        if venv is None:
            res[key] = {"error": "not run: " + res["install_error"]}
            continue
        procs.log(f"peers: {key}, {M} events x {E} endpoints")
        try:
            res[key] = _run_peer(ctx, which, venv, env, E, M)
        except Exception as exc:
            res[key] = {"error": f"could not run: {exc}"[:3000]}
    ours = res.get("ours", {}).get("deliveries_per_s")
    for key in ("django_webhook", "django_outbound_webhooks"):
        peer = res.get(key, {})
        res[f"ratio_vs_{key}"] = ratio(ours, peer.get("deliveries_per_s"), 1)
    res["targets"] = {
        f"ge_50x_{k}": (res[f"ratio_vs_{k}"] or 0) >= 50
        for k in ("django_webhook", "django_outbound_webhooks")
        if res.get(f"ratio_vs_{k}") is not None
    }
    return res


def _peer_line(res: dict[str, Any], key: str, label: str) -> str:
    peer = res.get(key)
    if peer is None:
        return f"{label} not run"
    if "error" in peer:
        return f"{label} FAILED ({peer['error'][:160]})"
    done = (
        ""
        if peer.get("complete")
        else f", {peer['delivered']}/{peer['expected_deliveries']} by "
        f"{peer.get('seconds_first_publish_to_last_receipt')} s"
    )
    return f"{label} {peer['deliveries_per_s']}/s{done} (ours {res.get('ratio_vs_' + key)} x)"


def summary(res: dict[str, Any]) -> str:
    ours = res.get("ours", {})
    return (
        f"peers ({res['config']['events']} events x {res['config']['endpoints']} endpoints, "
        "PostgreSQL): "
        f"ours {ours.get('deliveries_per_s')}/s; "
        + "; ".join(
            [
                _peer_line(res, "django_webhook", "django-webhook"),
                _peer_line(res, "django_outbound_webhooks", "django-outbound-webhooks"),
            ]
        )
    )
