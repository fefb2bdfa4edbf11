"""Demo flows and users, so a fresh install has something to click through."""
