"""Run every benchmark and print its figures: `make bench`."""

from bench import analytics, auth, embedded, incident_latency, overhead

if __name__ == "__main__":
    embedded.main()
    overhead.main()
    incident_latency.main()
    analytics.main()
    auth.main()
