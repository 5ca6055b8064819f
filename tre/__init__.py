"""tre: a trusted research environment for Norwegian health-register data (KPR)."""
