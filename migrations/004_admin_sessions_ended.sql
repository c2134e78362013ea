-- Admin sessions that were signed out (internal/adminsessions). The session cookie is
-- sealed, not looked up, so signing out alone would leave a copy of the cookie valid
-- until it expires; every replica refuses a session listed here. A row is kept until
-- the session would have expired anyway.
create table admin_sessions_ended (
    id         text primary key,
    expires_at timestamptz not null
);
create index admin_sessions_ended_expires_at on admin_sessions_ended (expires_at);

---- create above / drop below ----

drop table admin_sessions_ended;
