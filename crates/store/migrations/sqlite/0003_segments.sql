-- Versions as manifests over shared segments (crates/store/src/training_files).
-- A segment is an object holding the rendered fragments of the conversations
-- one change added; it is recorded here before its first byte is written
-- (state 'writing', so nothing deletes a change's objects while it runs) and
-- marked 'committed' in the transaction that commits its version.
CREATE TABLE training_file_segments (
    object_key       TEXT NOT NULL CONSTRAINT training_file_segments_pkey PRIMARY KEY,
    training_file_id TEXT NOT NULL,
    owner_id         TEXT NOT NULL,
    format           TEXT NOT NULL CONSTRAINT training_file_segments_format_check CHECK (format IN ('json', 'jsonl')),
    size             BIGINT,
    state            TEXT NOT NULL CONSTRAINT training_file_segments_state_check CHECK (state IN ('writing', 'committed')),
    created_at       TEXT NOT NULL
);
CREATE INDEX idx_training_file_segments_file ON training_file_segments (training_file_id);
CREATE INDEX idx_training_file_segments_state ON training_file_segments (state, created_at);

-- A member's fragments are ranges of segments. Members added before this
-- migration keep one object per fragment (offset 0, not framed: their JSON
-- bytes do not begin with the separator that precedes them in a file).
ALTER TABLE training_file_conversations ADD COLUMN fragment_json_offset BIGINT NOT NULL DEFAULT 0;
ALTER TABLE training_file_conversations ADD COLUMN fragment_jsonl_offset BIGINT NOT NULL DEFAULT 0;
ALTER TABLE training_file_conversations ADD COLUMN fragment_json_framed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE training_file_conversations ADD COLUMN short_id TEXT NOT NULL DEFAULT '';
UPDATE training_file_conversations SET short_id = substr(conversation_id, 1, 8);
CREATE INDEX idx_training_file_conversations_short ON training_file_conversations (training_file_id, short_id);

-- A version is its manifest (NULL for versions written before: one object
-- per format, at json_file_path / jsonl_file_path) and its running totals;
-- digests are computed when it is first downloaded whole. SQLite cannot
-- relax NOT NULL in place, so the table is rebuilt.
CREATE TABLE training_file_versions_new (
    training_file_id     TEXT NOT NULL CONSTRAINT training_file_versions_file_fkey REFERENCES training_files (id) ON DELETE CASCADE,
    version              BIGINT NOT NULL,
    owner_id             TEXT NOT NULL,
    change               TEXT NOT NULL CONSTRAINT training_file_versions_change_check CHECK (change IN ('create', 'add', 'remove', 'compact')),
    created_at           TEXT NOT NULL,
    created_by           TEXT,
    conversation_count   BIGINT NOT NULL,
    total_training_pairs BIGINT NOT NULL,
    added_count          BIGINT NOT NULL DEFAULT 0,
    removed_count        BIGINT NOT NULL DEFAULT 0,
    json_file_path       TEXT,
    jsonl_file_path      TEXT,
    json_file_size       BIGINT NOT NULL,
    jsonl_file_size      BIGINT NOT NULL,
    json_sha256          TEXT,
    jsonl_sha256         TEXT,
    manifest             TEXT,
    totals               TEXT,
    CONSTRAINT training_file_versions_pkey PRIMARY KEY (training_file_id, version)
);
INSERT INTO training_file_versions_new (training_file_id, version, owner_id, change, created_at, created_by, conversation_count,
    total_training_pairs, added_count, removed_count, json_file_path, jsonl_file_path, json_file_size, jsonl_file_size, json_sha256, jsonl_sha256)
SELECT v.training_file_id, v.version, v.owner_id, v.change, v.created_at, v.created_by, v.conversation_count, v.total_training_pairs,
    CASE v.change WHEN 'create' THEN v.conversation_count
        WHEN 'add' THEN v.conversation_count - COALESCE((SELECT p.conversation_count FROM training_file_versions p
            WHERE p.training_file_id = v.training_file_id AND p.version = v.version - 1), 0)
        ELSE 0 END,
    CASE v.change WHEN 'remove' THEN 1 ELSE 0 END,
    v.json_file_path, v.jsonl_file_path, v.json_file_size, v.jsonl_file_size, v.json_sha256, v.jsonl_sha256
FROM training_file_versions v;
DROP TABLE training_file_versions;
ALTER TABLE training_file_versions_new RENAME TO training_file_versions;
