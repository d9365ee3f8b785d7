"""``cityorder console``: run the operations-centre console; manage its users."""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
import time
import uuid
from typing import Any

import click
import orjson

from console.roles import ROLES
from ledger.cli import LEDGER_HELP, open_store, run_until_stopped
from streams.options import kafka_options, log_to_stderr, settings_from

log = logging.getLogger("console")


@click.group(invoke_without_command=True)
@kafka_options
@click.option("--ledger", "ledger_url", default=None, help=LEDGER_HELP)
@click.option("--state-dir", default=None, help="[env: CITYORDER_STATE_DIR; default: state]")
@click.option("--city", default=None, help="City map, for its time zone and calendar. "
              "[env: CITYORDER_CITY; required]")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for the centre's network).")
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--tiles", "console_tiles", default=None, metavar="URL",
              help="A tile layer under the map: a URL with {z}/{x}/{y} (Web Mercator, e.g. the "
              "centre's own tile server). [env: CITYORDER_CONSOLE_TILES; default: none]")
@click.option("--tiles-attribution", "console_tiles_attribution", default=None,
              help="Shown under the map, as the tiles' licence asks. "
              "[env: CITYORDER_CONSOLE_TILES_ATTRIBUTION]")
@click.option("--secure-cookies", is_flag=True,
              help="Mark cookies Secure (behind HTTPS, as in production).")
@click.option("--trusted-proxies", "console_trusted_proxies", default=None, metavar="ADDRESSES",
              help="The reverse proxies in front of the console (addresses or networks, "
              "comma-separated, e.g. 10.0.0.5,10.8.0.0/16): their X-Forwarded-For names who a "
              "request came from, for the audit trail and the sign-in limit. Behind a proxy and "
              "without this, every user has the proxy's address. "
              "[env: CITYORDER_CONSOLE_TRUSTED_PROXIES; default: none]")
@click.option("--loglevel", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def console(ctx: click.Context, ledger_url: str | None, host: str, port: int,
            secure_cookies: bool, loglevel: str, **flags: Any) -> None:
    """The operations-centre console (指挥中心): live board, cases, actions, audit trail.

    It reads the ledger's database (run `cityorder ledger` beside it) and follows city.alerts
    for live changes; actions go to city.alerts.feedback as the signed-in user. Users:
    `cityorder console users add NAME --role operator`. See docs/console.md.
    """
    ctx.ensure_object(dict)
    ctx.obj["settings"] = settings_from(**({"ledger_url": ledger_url} if ledger_url else {}),
                                        need_city=ctx.invoked_subcommand is None, **flags)
    if ctx.invoked_subcommand is not None:
        return
    from ledger.store import LedgerError

    log_to_stderr(loglevel)
    settings = ctx.obj["settings"]
    store = open_store(settings.ledger_location)

    try:
        run_until_stopped(lambda: serve(settings, store, host, port,
                                        secure_cookies=secure_cookies), "console")
    except LedgerError as e:
        raise click.ClickException(str(e)) from None
    finally:
        store.close()


async def serve(settings: Any, store: Any, host: str, port: int, *,
                secure_cookies: bool = False, on_started: Any = None) -> None:
    """Run the console until cancelled: the Kafka follower, the sender, the web server.
    ``on_started(console)`` is called once it serves (``cityorder dev``, the tests)."""
    from aiohttp import web

    from console.app import Console, make_app
    from console.board import Board
    from console.follow import Follower, Sender
    from console.mapview import view_of
    from rules.citymap import CityMap, read_geojson
    from streams.cli import _time_settings
    from streams.clock import FeedbackClockError, read_clock
    from streams.topics import ensure_topics

    geojson = read_geojson(settings.city)           # read once: checked, and drawn
    city = CityMap.from_geojson(geojson, source=str(settings.city))
    cal = city.calendar
    map_view = view_of(geojson)
    reorder_ms, lateness_ms = _time_settings(settings)
    audit_topic = settings.topic("city.audit")
    await ensure_topics(settings, {audit_topic: settings.partitions})
    sender = Sender(settings)
    await sender.start()

    async def stamp(alert_id: str) -> int:
        now = int(time.time() * 1000)
        try:
            clock = await read_clock(settings, alert_id)
        except FeedbackClockError:
            return now          # an alert Kafka has not seen: the engine will say so
        return clock.feedback_at(None, now_ms=now, reorder_window_ms=reorder_ms,
                                 allowed_lateness_ms=lateness_ms)

    async def publish_audit(row: dict[str, Any]) -> None:
        assert sender.producer is not None
        # Keyed by who acted: one person's actions stay in order.
        await sender.producer.send_and_wait(audit_topic, orjson.dumps(row),
                                            key=(row["actor"] or "").encode())

    board = Board(uuid.uuid4().hex[:8],
                  key_zones=frozenset(z.id for z in city.zones.values() if z.key))
    app_state = Console(store, board, cal, send=sender.send, stamp=stamp,
                        publish_audit=publish_audit, secure_cookies=secure_cookies,
                        map_view=map_view, city_name=city.name, tiles=settings.console_tiles,
                        tiles_attribution=settings.console_tiles_attribution,
                        trusted_proxies=settings.console_trusted_proxies)
    follower = Follower(settings, store, board, app_state.publish, app_state.refused,
                        app_state.dead_letters)
    runner = web.AppRunner(make_app(app_state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    follow_task = asyncio.create_task(follower.run(), name="console-follow")
    try:
        await site.start()
        log.info("console: http://%s:%d/ (ledger %s)", host, port, store.url)
        if on_started is not None:
            on_started(app_state)
        await follow_task
    finally:
        follow_task.cancel()
        await runner.cleanup()
        await sender.stop()


@console.group()
def users() -> None:
    """The console's users (in the ledger database): add, passwd, role, disable, enable, list."""


def _accounts(ctx: click.Context) -> Any:
    from console.auth import Accounts

    return Accounts(open_store(ctx.obj["settings"].ledger_location).engine)


def _password(given: str | None) -> str:
    if given is not None:
        return given
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise click.ClickException("the two passwords differ")
    return first


def _run(action: Any) -> None:
    from console.auth import UserError

    try:
        action()
    except UserError as e:
        raise click.ClickException(str(e)) from None


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES),
              required=True)
@click.option("--password", default=None,
              help="The password (default: asked for, or one line read from standard input).")
@click.pass_context
def users_add(ctx: click.Context, username: str, role: str, password: str | None) -> None:
    """Add a user with a role."""
    accounts = _accounts(ctx)
    _run(lambda: accounts.add(username, _password(password), role))
    click.echo(f"added {username} ({role})")


@users.command("passwd")
@click.argument("username")
@click.option("--password", default=None, help="As for add.")
@click.pass_context
def users_passwd(ctx: click.Context, username: str, password: str | None) -> None:
    """Set a user's password (their sessions end)."""
    accounts = _accounts(ctx)
    _run(lambda: accounts.passwd(username, _password(password)))
    click.echo(f"password of {username} changed; their sessions ended")


@users.command("role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@click.pass_context
def users_role(ctx: click.Context, username: str, role: str) -> None:
    """Change a user's role."""
    accounts = _accounts(ctx)
    _run(lambda: accounts.set_role(username, role))
    click.echo(f"{username} is now {role}")


@users.command("disable")
@click.argument("username")
@click.pass_context
def users_disable(ctx: click.Context, username: str) -> None:
    """Stop a user signing in (their sessions end at once)."""
    accounts = _accounts(ctx)
    _run(lambda: accounts.disable(username))
    click.echo(f"{username} disabled")


@users.command("enable")
@click.argument("username")
@click.pass_context
def users_enable(ctx: click.Context, username: str) -> None:
    """Let a disabled user sign in again."""
    accounts = _accounts(ctx)
    _run(lambda: accounts.enable(username))
    click.echo(f"{username} enabled")


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """Every user, role and whether disabled."""
    for u in _accounts(ctx).list():
        click.echo("\t".join([u.username, u.role, *(["disabled"] if u.disabled else [])]))
