"""HTTP routers, one per resource. Routers never know which engine runs: they talk to `EngineHandle`s."""
