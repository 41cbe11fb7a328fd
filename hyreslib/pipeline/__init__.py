"""What commands and notebooks drive: profiles, the notebook runner, the classical sweep, the shipped models."""
