"""Analytics: a projection of every engine's runs (history + the gateway's events) and the statistics,
performance, bottleneck and task-queue answers served from it (API.md "Analytics")."""
