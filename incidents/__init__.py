"""Gateway-owned incident workflow: detect, assign, retry, resolve, escalate — on every engine."""
