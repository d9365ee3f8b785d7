"""The four temporal operators, one module each, as pure step functions over a small state.

Each state knows when its next timer is due (``due``) so the engine can keep one heap entry
per state and re-check it when it pops; none of them knows about alerts, Kafka or clocks.
"""
