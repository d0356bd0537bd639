"""apiserver: the control plane of the local LLM-proxy stack."""

__version__ = "0.1.0"
