-- After a passing token-endpoint failure (5xx, 429, a timeout) the authorization backs
-- off on every replica, not only on the one that saw it: replicas queued on the row's
-- refresh lock read this instead of calling the failing endpoint again. Null: no backoff.
alter table authorizations add column refresh_backoff_until timestamptz;

---- create above / drop below ----

alter table authorizations drop column refresh_backoff_until;
