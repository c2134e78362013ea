-- Authorizations: the OAuth credentials nodes run with (internal/authstore). Secrets are
-- AES-256-GCM ciphertexts (internal/secrets) bound to "authorizations/<id>/<column>";
-- each ciphertext names its key, and key_id is the key of every ciphertext in the row,
-- so `noderuntime rotate-keys` finds the rows still under an older key.
-- version counts every change of the credentials: a replica that waited for the row
-- lock compares it to skip a refresh another replica already did.
create table authorizations (
    id               uuid primary key,
    tenant           text not null,
    name             text not null,
    kind             text not null check (kind in ('webex-login', 'client-credentials')),
    status           text not null check (status in ('pending', 'active', 'needs_reauthorization')),
    status_reason    text not null default '',
    base_url         text not null,
    region           text not null default '',
    domain           text not null,
    engage_tenant_id text not null default '',
    tenant_secret    bytea,
    access_token     bytea,
    refresh_token    bytea,
    token_expiry     timestamptz,
    key_id           text not null default '',
    version          bigint not null default 0,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    unique (tenant, name)
);
create index authorizations_key_id on authorizations (key_id);

-- OAuth login states: single use, short lived. Only the SHA-256 of the state is kept; the
-- PKCE verifier is a ciphertext bound to "oauth_states/<hex state_hash>/verifier".
create table oauth_states (
    state_hash       bytea primary key,
    authorization_id uuid not null references authorizations (id) on delete cascade,
    tenant           text not null,
    verifier         bytea not null,
    key_id           text not null default '',
    expires_at       timestamptz not null,
    created_at       timestamptz not null default now()
);
create index oauth_states_expires_at on oauth_states (expires_at);
create index oauth_states_authorization on oauth_states (authorization_id);
create index oauth_states_key_id on oauth_states (key_id);

-- Idempotency (internal/idempotency): the first answer of an execution, replayed byte for
-- byte for the same tenant, key and body. The primary key is the lock: the request whose
-- insert wins runs the execution; the others wait until response is set. locked_until
-- is the runner's lease; a row still without a response after it was abandoned.
create table idempotency_keys (
    tenant       text not null,
    key          text not null,
    request_hash bytea not null,
    response     bytea,
    locked_until timestamptz,
    created_at   timestamptz not null default now(),
    expires_at   timestamptz not null,
    primary key (tenant, key)
);
create index idempotency_keys_expires_at on idempotency_keys (expires_at);

-- Audit trail of what happened to authorizations: who (actor), what (action), when.
-- Never a secret. No foreign key: the trail outlives a deleted authorization.
create table audit_events (
    id               bigserial primary key,
    tenant           text not null,
    authorization_id uuid,
    action           text not null,
    actor            text not null default '',
    detail           jsonb not null default '{}',
    created_at       timestamptz not null default now()
);
create index audit_events_authorization on audit_events (authorization_id, created_at);
create index audit_events_tenant on audit_events (tenant, created_at);

---- create above / drop below ----

drop table audit_events;
drop table idempotency_keys;
drop table oauth_states;
drop table authorizations;
