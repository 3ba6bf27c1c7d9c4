"""Engines that decode a run's plan somewhere other than this process (optional extras)."""
