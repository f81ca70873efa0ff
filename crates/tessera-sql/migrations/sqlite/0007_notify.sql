-- PostgreSQL's version 7 makes the invalidation triggers notify listening instances
-- (LISTEN/NOTIFY). SQLite has no notifications: instances follow the log alone, so this version
-- only keeps both backends' schema versions in step.
SELECT 1;
