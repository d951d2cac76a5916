"""One module per engine; each defines `HARNESS`, a `Harness` that the conformance suite runs."""
