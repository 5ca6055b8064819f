"""`tre synth`: synthetic national register deliveries (filled in by the synth module)."""
