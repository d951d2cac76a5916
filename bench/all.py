"""Run every benchmark and print its figures: `make bench`."""

from bench import analytics, change_feed_latency, embedded, events, incident_latency, memory, overhead

if __name__ == "__main__":
    embedded.main()
    overhead.main()
    incident_latency.main()
    analytics.main()
    events.main()
    change_feed_latency.main()
    memory.main()
