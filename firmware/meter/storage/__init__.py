# Storage: the flash journal, what the meter keeps in it, the per-meter key.
