"""Run every benchmark and print its figures: `make bench`."""

from bench import (
    analytics,
    auth,
    change_feed_latency,
    console,
    embedded,
    event_loop_stalls,
    events,
    incident_latency,
    memory,
    overhead,
    queries,
    task_inbox,
)

if __name__ == "__main__":
    embedded.main()
    queries.main()
    task_inbox.main([])
    overhead.main()
    incident_latency.main()
    analytics.main()
    auth.main()
    events.main()
    change_feed_latency.main()
    memory.main()
    event_loop_stalls.main([])
    console.main()
