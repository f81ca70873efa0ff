-- Who acted, by name: the staff member's username for changes made in the admin UI (the `actor`
-- column says only 'admin'). NULL for everything else.
ALTER TABLE audit_events ADD COLUMN actor_name TEXT;
