-- Authorizations: the OAuth credentials nodes run with. Secrets are AES-256-GCM
-- ciphertexts (internal/secrets) bound to the row ID and column name; each names its key.
create table authorizations (
    id                  uuid primary key,
    tenant              text not null,
    name                text not null,
    kind                text not null check (kind in ('webex-login', 'client-credentials')),
    status              text not null check (status in ('pending', 'active', 'needs_reauthorization')),
    base_url            text not null,
    region              text not null default '',
    domain              text not null,
    engage_tenant_id    text not null default '',
    tenant_secret       bytea,
    access_token        bytea,
    refresh_token       bytea,
    token_expiry        timestamptz,
    key_id              text not null default '',
    version             bigint not null default 0,
    refresh_lease_until timestamptz,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    unique (tenant, name)
);
create index authorizations_key_id on authorizations (key_id);

-- OAuth login states: single use, short lived; the PKCE verifier is encrypted.
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

-- Idempotency: the first result of an execution, replayed for the same key and body.
create table idempotency_keys (
    tenant       text not null,
    key          text not null,
    request_hash bytea not null,
    response     jsonb,
    created_at   timestamptz not null default now(),
    expires_at   timestamptz not null,
    primary key (tenant, key)
);
create index idempotency_keys_expires_at on idempotency_keys (expires_at);

-- Audit trail of what happened to authorizations; never a secret.
create table audit_events (
    id               bigserial primary key,
    tenant           text not null,
    authorization_id uuid,
    action           text not null,
    detail           jsonb not null default '{}',
    created_at       timestamptz not null default now()
);
create index audit_events_authorization on audit_events (authorization_id, created_at);

---- create above / drop below ----

drop table audit_events;
drop table idempotency_keys;
drop table oauth_states;
drop table authorizations;
