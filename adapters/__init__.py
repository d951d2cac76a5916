"""Engine adapters: every engine serves the same `EngineAdapter` contract (see `adapters.base`)."""
