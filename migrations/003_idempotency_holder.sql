-- Which claim holds an idempotency key: a random token the claiming request chose.
-- Only that request stores the key's answer or releases the key, so a holder that
-- outlived its lease cannot undo the claim of the request that took the key over; and
-- a request whose claim reached Postgres but whose answer was lost can release the
-- key it does not know it holds. Null on rows claimed before this column existed.
alter table idempotency_keys add column holder bytea;

---- create above / drop below ----

alter table idempotency_keys drop column holder;
