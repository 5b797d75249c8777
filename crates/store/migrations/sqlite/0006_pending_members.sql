-- Members a change in flight has written (crates/store/src/training_files/segments.rs):
-- a change stages its new member rows here as it writes their fragments, so
-- its memory does not grow with what it adds, and its commit moves them into
-- training_file_conversations in the transaction that commits its version.
-- An attempt that will not commit deletes its rows; a crash leaves them for
-- `lora-files doctor --repair` (by age, like segments still 'writing').
CREATE TABLE training_file_pending_members (
    attempt               TEXT NOT NULL,
    id                    TEXT NOT NULL,
    training_file_id      TEXT NOT NULL,
    conversation_row_id   TEXT NOT NULL,
    conversation_id       TEXT NOT NULL,
    owner_id              TEXT NOT NULL,
    position              BIGINT NOT NULL,
    added_at              TEXT NOT NULL,
    added_by              TEXT,
    fragment_json_path    TEXT NOT NULL,
    fragment_jsonl_path   TEXT NOT NULL,
    fragment_json_size    BIGINT NOT NULL,
    fragment_jsonl_size   BIGINT NOT NULL,
    line_id_suffix        TEXT NOT NULL,
    turns                 BIGINT NOT NULL,
    pairs                 BIGINT NOT NULL,
    human_reviewed_pairs  BIGINT NOT NULL,
    quality_score         DOUBLE PRECISION,
    persona_key           TEXT,
    emotional_arc_key     TEXT,
    topic_key             TEXT,
    fragment_json_offset  BIGINT NOT NULL,
    fragment_jsonl_offset BIGINT NOT NULL,
    fragment_json_framed  BIGINT NOT NULL,
    short_id              TEXT NOT NULL,
    openai_size           BIGINT,
    sharegpt_size         BIGINT,
    alpaca_size           BIGINT,
    context_tokens        BIGINT,
    training_tokens       BIGINT,
    token_examples        BIGINT,
    max_example_tokens    BIGINT
);
CREATE INDEX idx_training_file_pending_members_attempt ON training_file_pending_members (attempt);
