"""One training loop for every stage, its distributed launch and clean interruption."""
