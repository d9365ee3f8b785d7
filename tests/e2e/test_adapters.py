"""The camera adapters as real processes on the embedded broker: ``cityorder adapt deepstream``
reading a Kafka topic, ``cityorder adapt frigate`` reading a real MQTT broker (mosquitto).
Messages are produced at full speed while they run, with garbage mixed in, and each adapter is
killed with SIGKILL halfway. Every good message reaches city.events.camera as a message the
worker accepts, every bad one is a dead letter with its reason and where it came from, nothing
is lost (repeats after the kill are allowed: the worker drops them by event_id)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from models.decode import BadInput, Source, decode
from streams.dev import free_port
from streams.settings import Settings
from streams.topics import default_topics, ensure_topics
from tests.e2e.workers import Cli, read_topic
from tests.mosquitto import Mosquitto
from tests.pinhole import calibrated_geojson
from tests.promtool import check_metrics
from tests.scrape import undocumented

SAMPLES = Path(__file__).resolve().parents[1] / "adapters" / "samples"
pytestmark = pytest.mark.timeout(300)


def messages(n: int) -> list[bytes]:
    """``n`` good minimal-schema frames of cam-0012, a full-schema one every tenth."""
    minimal = json.loads((SAMPLES / "deepstream_minimal.json").read_text(encoding="utf-8"))
    full = json.loads((SAMPLES / "deepstream_full.json").read_text(encoding="utf-8"))
    out = []
    for i in range(n):
        if i % 10 == 0:
            out.append(orjson.dumps(full | {"messageid": f"full-{i}"}))
        else:
            out.append(orjson.dumps(minimal | {"id": str(i)}))
    return out


BAD = [b"not json", orjson.dumps({"version": "4.0", "id": "1", "@timestamp": "2026-11-22T00:15:03Z",
                                  "sensorId": "cam-0001", "objects": ["1|900|500|1000|760|car"]})]


class Adapter(Cli):
    def __init__(self, settings: Settings, city: Path, log: Path, *args: str) -> None:
        """``args``: the adapter's name and its own arguments, e.g. ``deepstream TOPIC``."""
        self.port = free_port(0)
        self.name = args[0]
        super().__init__(settings, log, "adapt", *args, "--city", str(city), "--web-port", str(self.port))

    def wait_subscribed(self, timeout: float = 60) -> None:
        """Until the adapter says it is ready: over MQTT, once the broker acknowledged its
        subscription (what is published before then is not kept for a new session)."""
        deadline = time.monotonic() + timeout
        while f'cityorder_adapter_ready{{adapter="{self.name}"}} 1.0' not in self.wait_metrics(timeout):
            assert time.monotonic() < deadline, f"not subscribed after {timeout} s:\n{self.tail()}"
            time.sleep(0.1)



def collect(settings: Settings, adapter: Adapter, want: set[str]) -> tuple[list[dict[str, Any]],
                                                                           list[dict[str, Any]], str]:
    """What reached city.events.camera and the dead letters once every ``want`` id is there,
    and the adapter's metrics; every camera message is one the worker accepts."""
    camera = read_topic(settings, "city.events.camera",
                        done=lambda got: len({m["event_id"] for m in got}) >= len(want), timeout=120)
    dead = read_topic(settings, "city.alerts.deadletter", done=lambda got: len(got) >= 2, quiet_s=1)
    metrics = adapter.metrics()
    assert {m["event_id"] for m in camera} == want
    for m in camera[:200]:
        assert not isinstance(decode(Source.CAMERA, orjson.dumps(m)), BadInput)
    assert not undocumented(metrics), "metrics missing from docs/monitoring.md"
    check_metrics(metrics)
    return camera, dead, metrics


def produce(settings: Settings, topic: str, values: list[bytes]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(**settings.producer_kwargs(), linger_ms=5)
        await producer.start()
        try:
            for v in values:
                await producer.send(topic, v, key=b"cam-0012")
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(run())


def test_deepstream_in_camera_messages_out_through_a_kill(settings: Settings, tmp_path: Path) -> None:
    source = settings.topic_prefix + "deepstream"
    asyncio.run(ensure_topics(settings, {**default_topics(settings), source: 2}))
    city = tmp_path / "city.geojson"
    city.write_bytes(orjson.dumps(calibrated_geojson()))
    good = messages(4000)
    adapter = Adapter(settings, city, tmp_path / "adapter.log", "deepstream", source)
    try:
        produce(settings, source, good[:2000] + BAD)
        time.sleep(1.0)
        adapter.kill()                 # mid-stream, offsets partly committed
        produce(settings, source, good[2000:])
        adapter = Adapter(settings, city, tmp_path / "adapter.log", "deepstream", source)
        stamp = "2026-11-22T00:15:03.120Z"
        want = {json.loads(g).get("messageid") or f"ds-cam-0012-{stamp}-{json.loads(g)['id']}" for g in good}
        _, dead, metrics = collect(settings, adapter, want)
    finally:
        adapter.stop()
    reasons = Counter((d["reason_code"], d["topic"]) for d in dead)
    assert reasons == {("bad_json", source): 1, ("unregistered_device", source): 1}, dead
    assert all(d["offset"] is not None and d["partition"] is not None for d in dead)
    assert 'cityorder_adapter_messages_total{adapter="deepstream",outcome="converted"}' in metrics


def frigate_events(n: int) -> list[bytes]:
    """``n`` tracked cars on cam-0012, each a new, an update and an end (3n messages)."""
    lines = [json.loads(line) for line in (SAMPLES / "frigate_events.jsonl").read_text(encoding="utf-8")
             .splitlines()]
    out = []
    for i in range(n):
        for line in lines:
            event = json.loads(json.dumps(line))
            for side in ("before", "after"):
                event[side] |= {"camera": "cam-0012", "id": f"{event[side]['id']}-{i}"}
            out.append(orjson.dumps(event))
    return out


def publish(url: str, values: list[bytes]) -> None:
    from paho.mqtt.client import CallbackAPIVersion, Client

    host, port = url.removeprefix("mqtt://").split(":")
    client = Client(CallbackAPIVersion.VERSION2, client_id="frigate-test")
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    try:
        infos = [client.publish("frigate/events", v, qos=1) for v in values]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()


def test_frigate_over_mqtt_in_camera_messages_out_through_a_kill(settings: Settings, tmp_path: Path) -> None:
    asyncio.run(ensure_topics(settings, default_topics(settings)))
    city = tmp_path / "city.geojson"
    city.write_bytes(orjson.dumps(calibrated_geojson()))
    events = frigate_events(500)
    broker = Mosquitto()
    log = tmp_path / "adapter.log"
    adapter = Adapter(settings, city, log, "frigate", "--mqtt", broker.url)
    try:
        adapter.wait_subscribed()                   # its session exists from now on
        publish(broker.url, [*events[:750], b"not json"])
        adapter.kill()
        publish(broker.url, [*events[750:], b'{"type": "new"}'])    # kept by the broker meanwhile
        adapter = Adapter(settings, city, log, "frigate", "--mqtt", broker.url)
        want = set()
        for raw in events:
            e = json.loads(raw)
            a = e["after"]
            want.add(f"frigate-{a['id']}-" + ("end" if e["type"] == "end" else f"{a['frame_time']:.6f}"))
        camera, dead, metrics = collect(settings, adapter, want)
    finally:
        adapter.stop()
        broker.stop()
    assert sum(1 for m in camera if m["detections"]) >= 1000
    reasons = Counter((d["reason_code"], d["topic"]) for d in dead)
    assert reasons == {("bad_json", "frigate/events"): 1, ("invalid_field", "frigate/events"): 1}, dead
    assert 'cityorder_adapter_messages_total{adapter="frigate",outcome="converted"}' in metrics


def test_open311_requests_reach_the_report_topic(settings: Settings, tmp_path: Path) -> None:
    """The real process: a request posted over HTTP is a report on the topic, its status served."""
    port, web_port = free_port(0), free_port(0)
    proc = Cli(settings, tmp_path / "open311.log", "adapt", "open311", "--port", str(port),
               "--web-port", str(web_port), "--ledger", str(tmp_path / "ledger.sqlite"))
    base = f"http://127.0.0.1:{port}/open311/v2"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/services.json", timeout=2).close()
                break
            except OSError:
                assert proc.proc.poll() is None and time.monotonic() < deadline, proc.tail()
                time.sleep(0.2)
        body = urllib.parse.urlencode({"service_code": "garbage_pile", "lat": "30.385677",
                                       "long": "104.541455", "description": "垃圾"}).encode()
        with urllib.request.urlopen(f"{base}/requests.json", data=body, timeout=10) as r:
            assert r.status == 201
            (answer,) = json.loads(r.read())
        request_id = answer["service_request_id"]
        reports = read_topic(settings, "city.events.report", done=lambda got: len(got) >= 1, quiet_s=0.5)
        assert [(m["event_id"], m["category"], m["source"]) for m in reports] == [
            (request_id, "garbage_pile", "app")]
        with urllib.request.urlopen(f"{base}/requests/{request_id}.json", timeout=10) as r:
            (status,) = json.loads(r.read())
        assert status["status"] == "open" and status["description"] == "垃圾"
        # health and metrics on a port of their own, as the other adapters have
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=10) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert 'cityorder_open311_requests_total{outcome="accepted"} 1.0' in metrics
        assert 'component="adapter-open311"' in metrics
    finally:
        proc.stop()
