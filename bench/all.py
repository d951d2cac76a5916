"""Run every benchmark and print its figures: `make bench`."""

from bench import embedded, incident_latency, memory, overhead

if __name__ == "__main__":
    embedded.main()
    overhead.main()
    incident_latency.main()
    memory.main()
