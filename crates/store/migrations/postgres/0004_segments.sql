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
GRANT SELECT, INSERT, UPDATE, DELETE ON training_file_segments TO lora_files_app;
ALTER TABLE training_file_segments ENABLE ROW LEVEL SECURITY;
CREATE POLICY training_file_segments_owner ON training_file_segments FOR ALL TO lora_files_app
    USING (owner_id = current_setting('lora_files.user_id', true))
    WITH CHECK (owner_id = current_setting('lora_files.user_id', true));

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
-- digests are computed when it is first downloaded whole.
ALTER TABLE training_file_versions DROP CONSTRAINT training_file_versions_change_check;
ALTER TABLE training_file_versions ADD CONSTRAINT training_file_versions_change_check CHECK (change IN ('create', 'add', 'remove', 'compact'));
ALTER TABLE training_file_versions ADD COLUMN added_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE training_file_versions ADD COLUMN removed_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE training_file_versions ADD COLUMN manifest TEXT;
ALTER TABLE training_file_versions ADD COLUMN totals TEXT;
ALTER TABLE training_file_versions ALTER COLUMN json_file_path DROP NOT NULL;
ALTER TABLE training_file_versions ALTER COLUMN jsonl_file_path DROP NOT NULL;
ALTER TABLE training_file_versions ALTER COLUMN json_sha256 DROP NOT NULL;
ALTER TABLE training_file_versions ALTER COLUMN jsonl_sha256 DROP NOT NULL;
UPDATE training_file_versions v SET
    added_count = CASE v.change WHEN 'create' THEN v.conversation_count
        WHEN 'add' THEN v.conversation_count - COALESCE((SELECT p.conversation_count FROM training_file_versions p
            WHERE p.training_file_id = v.training_file_id AND p.version = v.version - 1), 0)
        ELSE 0 END,
    removed_count = CASE v.change WHEN 'remove' THEN 1 ELSE 0 END;
