-- Long work as background jobs (crates/store/src/jobs.rs): a queue in the
-- catalogue that workers claim with a lease they renew while they work; a
-- job whose lease ran out is claimed again by the next worker.
CREATE TABLE jobs (
    id               TEXT NOT NULL CONSTRAINT jobs_pkey PRIMARY KEY,
    kind             TEXT NOT NULL CONSTRAINT jobs_kind_check CHECK (kind IN ('create', 'add', 'remove', 'import', 'enrich', 'compact')),
    owner_id         TEXT NOT NULL CONSTRAINT jobs_owner_fkey REFERENCES users (id) ON DELETE CASCADE,
    training_file_id TEXT,
    input            TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'queued'
        CONSTRAINT jobs_state_check CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    phase            TEXT NOT NULL DEFAULT 'queued',
    done             BIGINT NOT NULL DEFAULT 0,
    total            BIGINT NOT NULL DEFAULT 0,
    bytes            BIGINT NOT NULL DEFAULT 0,
    attempts         BIGINT NOT NULL DEFAULT 0,
    error            TEXT,
    result           TEXT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    claimed_by       TEXT,
    lease_until      TEXT,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    updated_at       TEXT NOT NULL
);
CREATE INDEX idx_jobs_claim ON jobs (state, created_at);
CREATE INDEX idx_jobs_owner ON jobs (owner_id, created_at DESC);
CREATE INDEX idx_jobs_file ON jobs (training_file_id, created_at DESC);
