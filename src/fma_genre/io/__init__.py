"""Shared by every stage: atomic outputs, digests, FMA's folder layout, rule logs, code inputs."""
