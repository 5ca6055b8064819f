"""Synthetic national register data: DSF, KUHR, IPLOS, NPR, SES, opt-outs and more."""
