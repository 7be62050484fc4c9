"""The Dash dashboard: layout and callbacks; computes nothing itself."""
