"""Engine adapters: every engine serves the same `EngineAdapter` contract (the port in `gateway.engines.port`)."""
