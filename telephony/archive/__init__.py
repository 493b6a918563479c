"""The durable ticket archive in PostgreSQL: ended tickets, their calls, legs,
transfers, conferences and every timeline step (可查、可看、可追溯). Redis stays the
live state; docs/archive.md."""
