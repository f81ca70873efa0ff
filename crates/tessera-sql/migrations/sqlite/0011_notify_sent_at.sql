-- PostgreSQL's version 11 adds the send time to the invalidation notifications. SQLite has no
-- notifications: this version only keeps both backends' schema versions in step.
SELECT 1;
