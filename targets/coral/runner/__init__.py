"""edgeser device runner: ``python -m runner FILE...`` prints arousal, dominance, valence per file."""
