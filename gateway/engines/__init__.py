"""The engine port the core owns: the adapter contract (`port`), its HTTP support (`http`), how adapters are
found (`plugins`), and the conformance suite that defines a correct adapter (`testing`)."""
