-- The catalogue: users, conversations, training files, their members and versions.
-- Ids are UUID text, timestamps RFC 3339 text (UTC, milliseconds), JSON as text:
-- the same column types on SQLite and PostgreSQL.

CREATE TABLE users (
    id            TEXT NOT NULL CONSTRAINT users_pkey PRIMARY KEY,
    email         TEXT NOT NULL CONSTRAINT users_email_key UNIQUE,
    password_hash TEXT,
    created_at    TEXT NOT NULL
);

CREATE TABLE conversations (
    id                   TEXT NOT NULL CONSTRAINT conversations_pkey PRIMARY KEY,
    conversation_id      TEXT NOT NULL,
    owner_id             TEXT NOT NULL CONSTRAINT conversations_owner_fkey REFERENCES users (id) ON DELETE CASCADE,
    enrichment_status    TEXT NOT NULL DEFAULT 'not_started'
        CONSTRAINT conversations_enrichment_status_check CHECK (enrichment_status IN
            ('not_started', 'validation_failed', 'validated', 'enrichment_in_progress', 'enriched', 'normalization_failed', 'completed')),
    enriched_file_path   TEXT,
    enriched_file_size   BIGINT,
    enriched_sha256      TEXT,
    persona_key          TEXT,
    emotional_arc_key    TEXT,
    topic_key            TEXT,
    scaffolding_snapshot TEXT,
    quality_score        DOUBLE PRECISION,
    tier                 TEXT,
    turn_count           BIGINT NOT NULL DEFAULT 0,
    pair_count           BIGINT NOT NULL DEFAULT 0,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    CONSTRAINT conversations_owner_conversation_key UNIQUE (owner_id, conversation_id)
);
CREATE INDEX idx_conversations_owner_status ON conversations (owner_id, enrichment_status, created_at DESC);

CREATE TABLE training_files (
    id                       TEXT NOT NULL CONSTRAINT training_files_pkey PRIMARY KEY,
    owner_id                 TEXT NOT NULL CONSTRAINT training_files_owner_fkey REFERENCES users (id) ON DELETE CASCADE,
    name                     TEXT NOT NULL,
    description              TEXT,
    json_file_path           TEXT NOT NULL,
    jsonl_file_path          TEXT NOT NULL,
    storage_bucket           TEXT NOT NULL DEFAULT 'training-files',
    conversation_count       BIGINT NOT NULL DEFAULT 0,
    total_training_pairs     BIGINT NOT NULL DEFAULT 0,
    total_turns              BIGINT NOT NULL DEFAULT 0,
    json_file_size           BIGINT,
    jsonl_file_size          BIGINT,
    avg_quality_score        DOUBLE PRECISION,
    min_quality_score        DOUBLE PRECISION,
    max_quality_score        DOUBLE PRECISION,
    human_reviewed_count     BIGINT NOT NULL DEFAULT 0,
    scaffolding_distribution TEXT NOT NULL DEFAULT '{}',
    status                   TEXT NOT NULL DEFAULT 'active'
        CONSTRAINT training_files_status_check CHECK (status IN ('active', 'archived', 'processing', 'failed')),
    current_version          BIGINT NOT NULL,
    consultant_profile       TEXT NOT NULL,
    vertical                 TEXT NOT NULL,
    target_model             TEXT,
    last_updated_at          TEXT,
    created_by               TEXT,
    created_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL,
    CONSTRAINT training_files_owner_name_key UNIQUE (owner_id, name)
);
CREATE INDEX idx_training_files_created_by ON training_files (created_by);
CREATE INDEX idx_training_files_status ON training_files (status);
CREATE INDEX idx_training_files_created_at ON training_files (created_at DESC);
CREATE INDEX idx_training_files_owner_listing ON training_files (owner_id, created_at DESC, id DESC);

-- One row per conversation in a file's current version, with what its
-- rendered fragment contributes: a new version is written from these rows
-- and the stored fragments, never from the conversations' sources.
CREATE TABLE training_file_conversations (
    id                   TEXT NOT NULL CONSTRAINT training_file_conversations_pkey PRIMARY KEY,
    training_file_id     TEXT NOT NULL CONSTRAINT training_file_conversations_file_fkey REFERENCES training_files (id) ON DELETE CASCADE,
    conversation_row_id  TEXT NOT NULL CONSTRAINT training_file_conversations_conversation_fkey REFERENCES conversations (id) ON DELETE RESTRICT,
    conversation_id      TEXT NOT NULL,
    owner_id             TEXT NOT NULL,
    position             BIGINT NOT NULL,
    added_at             TEXT NOT NULL,
    added_by             TEXT,
    fragment_json_path   TEXT NOT NULL,
    fragment_jsonl_path  TEXT NOT NULL,
    fragment_json_size   BIGINT NOT NULL,
    fragment_jsonl_size  BIGINT NOT NULL,
    line_id_suffix       TEXT NOT NULL,
    turns                BIGINT NOT NULL,
    pairs                BIGINT NOT NULL,
    human_reviewed_pairs BIGINT NOT NULL,
    quality_score        DOUBLE PRECISION,
    persona_key          TEXT,
    emotional_arc_key    TEXT,
    topic_key            TEXT,
    CONSTRAINT unique_training_file_conversation UNIQUE (training_file_id, conversation_id)
);
CREATE INDEX idx_training_file_conversations_file_id ON training_file_conversations (training_file_id, position);
CREATE INDEX idx_training_file_conversations_conversation_id ON training_file_conversations (conversation_id);

-- Immutable history: one row per version, never updated.
CREATE TABLE training_file_versions (
    training_file_id     TEXT NOT NULL CONSTRAINT training_file_versions_file_fkey REFERENCES training_files (id) ON DELETE CASCADE,
    version              BIGINT NOT NULL,
    owner_id             TEXT NOT NULL,
    change               TEXT NOT NULL CONSTRAINT training_file_versions_change_check CHECK (change IN ('create', 'add', 'remove')),
    created_at           TEXT NOT NULL,
    created_by           TEXT,
    conversation_count   BIGINT NOT NULL,
    total_training_pairs BIGINT NOT NULL,
    json_file_path       TEXT NOT NULL,
    jsonl_file_path      TEXT NOT NULL,
    json_file_size       BIGINT NOT NULL,
    jsonl_file_size      BIGINT NOT NULL,
    json_sha256          TEXT NOT NULL,
    jsonl_sha256         TEXT NOT NULL,
    CONSTRAINT training_file_versions_pkey PRIMARY KEY (training_file_id, version)
);

-- Scaffolding reference data (shared, not user data).
CREATE TABLE personas (
    persona_key TEXT NOT NULL CONSTRAINT personas_pkey PRIMARY KEY,
    id          TEXT,
    name        TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE TABLE emotional_arcs (
    arc_key TEXT NOT NULL CONSTRAINT emotional_arcs_pkey PRIMARY KEY,
    id      TEXT,
    name    TEXT NOT NULL,
    data    TEXT NOT NULL
);
CREATE TABLE training_topics (
    topic_key TEXT NOT NULL CONSTRAINT training_topics_pkey PRIMARY KEY,
    id        TEXT,
    name      TEXT NOT NULL,
    data      TEXT NOT NULL
);
