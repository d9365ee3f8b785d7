"""Camera platforms in: converters from their formats to ``city.events.camera`` (pure), and the
loop that runs them against Kafka (``bridge``). ``cityorder adapt``; docs/adapters.md."""
