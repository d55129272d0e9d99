"""Provider faults survived: the retry policy, per-provider health and cooldown, and the one attempt loop."""
