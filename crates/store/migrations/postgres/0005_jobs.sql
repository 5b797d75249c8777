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

-- Row-level security as on the other tables: people see their own jobs.
GRANT SELECT, INSERT, UPDATE, DELETE ON jobs TO lora_files_app;
ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_owner ON jobs FOR ALL TO lora_files_app
    USING (owner_id = current_setting('lora_files.user_id', true))
    WITH CHECK (owner_id = current_setting('lora_files.user_id', true));

-- A worker serves every owner, so claiming runs with the rights of the
-- migration's owner: it takes the oldest job that is queued or whose lease
-- ran out, skipping rows other workers hold locked, and returns only that
-- row. Everything after the claim acts as the job's owner.
CREATE FUNCTION lora_files_claim_job(p_worker TEXT, p_now TEXT, p_lease_until TEXT)
    RETURNS SETOF jobs
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    UPDATE jobs SET state = 'running', claimed_by = p_worker, lease_until = p_lease_until, attempts = attempts + 1,
        started_at = COALESCE(started_at, p_now), updated_at = p_now
    WHERE id = (SELECT j.id FROM jobs j
                WHERE j.state = 'queued' OR (j.state = 'running' AND j.lease_until < p_now)
                ORDER BY j.created_at, j.id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING *
$$;
REVOKE ALL ON FUNCTION lora_files_claim_job(TEXT, TEXT, TEXT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lora_files_claim_job(TEXT, TEXT, TEXT) TO lora_files_app;

-- Jobs by kind and state over every owner, for /metrics (counts only).
CREATE FUNCTION lora_files_job_counts()
    RETURNS TABLE (kind TEXT, state TEXT, jobs BIGINT)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT j.kind, j.state, count(*) FROM jobs j GROUP BY j.kind, j.state
$$;
REVOKE ALL ON FUNCTION lora_files_job_counts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lora_files_job_counts() TO lora_files_app;
