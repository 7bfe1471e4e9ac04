"""Job twin: what every training job is doing, what it costs, and what happens if (issue 11)."""
