"""A platform that publishes to MQTT (Frigate's ``frigate/events``): one topic in, camera
messages out.

At least once, nothing lost while the adapter runs or is down: it subscribes at QoS 1 in a
persistent session (a fixed client id, no clean session), so the broker keeps what arrives
while it is away, and acknowledges each MQTT message (paho's manual acknowledgement) only after
Kafka has acknowledged what it became. A message the adapter had but had not acknowledged when
it died is delivered again. The broker's in-flight window (mosquitto's
``max_inflight_messages``, 20 by default) bounds what is held in memory. The publisher must
publish at QoS 1 too (Frigate: ``mqtt: qos: 1``): MQTT delivers at the lower of the two.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit

from aiohttp import web
from paho.mqtt.client import CallbackAPIVersion, Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.reasoncodes import ReasonCode

from adapters.bridge import Router
from streams.settings import Settings

log = logging.getLogger(__name__)

BATCH = 500


class MqttBridge:
    def __init__(self, settings: Settings, router: Router, url: str, topic: str) -> None:
        """``url``: ``mqtt://[user:password@]host[:port]``."""
        parts = urlsplit(url)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError(f"{url!r} is not an MQTT broker URL: write mqtt://host:1883 "
                             "(or mqtt://user:password@host:1883)")
        self.settings, self.router, self.topic = settings, router, topic
        self.adapter, self.metrics = router.adapter, router.metrics
        self.host, self.port = parts.hostname, parts.port or 1883
        self.username, self.password = parts.username, parts.password
        self.client_id = f"{settings.app_id}-adapter-{router.adapter}"

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, int, bytes, str]] = asyncio.Queue()
        client = Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False,
                        manual_ack=True)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)

        def on_connect(c: Client, _: object, flags: ConnectFlags, code: ReasonCode, __: object) -> None:
            if code.is_failure:
                log.warning("adapter %s: %s:%d refused the connection: %s", self.adapter, self.host,
                            self.port, code)
                return
            c.subscribe(self.topic, qos=1)
            log.info("adapter %s: mqtt://%s:%d %s -> %s (session %s)", self.adapter, self.host, self.port,
                     self.topic, self.router.camera_topic,
                     "resumed" if flags.session_present else "new")

        def on_subscribe(_: Client, __: object, ___: int, codes: list[ReasonCode], ____: object) -> None:
            # Ready once the broker has the subscription: in a new session, what is published
            # before then is not kept for the adapter.
            if any(code.is_failure for code in codes):
                log.warning("adapter %s: %s:%d refused the subscription to %s: %s", self.adapter,
                            self.host, self.port, self.topic, codes)
                return
            loop.call_soon_threadsafe(self.metrics.ready.labels(self.adapter).set, 1)

        def on_disconnect(_: Client, __: object, ___: DisconnectFlags, code: ReasonCode,
                          ____: object) -> None:
            loop.call_soon_threadsafe(self.metrics.ready.labels(self.adapter).set, 0)
            log.warning("adapter %s: disconnected from mqtt://%s:%d (%s); reconnecting", self.adapter,
                        self.host, self.port, code)

        def on_message(_: Client, __: object, msg: MQTTMessage) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (msg.mid, msg.qos, bytes(msg.payload), msg.topic))

        client.on_connect, client.on_disconnect, client.on_message = on_connect, on_disconnect, on_message
        client.on_subscribe = on_subscribe
        client.reconnect_delay_set(1, 30)
        producer = await self.router.producer(self.settings)
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()
        try:
            while True:
                batch = [await queue.get()]
                while len(batch) < BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                started = time.perf_counter()
                acks = []
                for _, _, payload, topic in batch:
                    out_topic, key, value = self.router.route(topic, None, None, None, payload)
                    acks.append(await producer.send(out_topic, value, key=key))
                await asyncio.gather(*acks)       # Kafka has them all: now the broker may forget
                for mid, qos, _, _ in batch:
                    if qos > 0:
                        client.ack(mid, qos)
                self.metrics.batch.labels(self.adapter).observe(time.perf_counter() - started)
                self.metrics.lag.labels(self.adapter).set(queue.qsize())
        finally:
            self.metrics.ready.labels(self.adapter).set(0)
            client.loop_stop()
            client.disconnect()
            await producer.stop()

    def web_app(self) -> web.Application:
        return self.router.web_app()
