-- Conversations at any stage: the source they came as (raw or parsed LLM
-- output, kept as sent), what validation found and what enrichment did.
ALTER TABLE conversations ADD COLUMN source_path TEXT;
ALTER TABLE conversations ADD COLUMN source_sha256 TEXT;
ALTER TABLE conversations ADD COLUMN source_stage TEXT NOT NULL DEFAULT 'enriched';
ALTER TABLE conversations ADD COLUMN parse_error TEXT;
ALTER TABLE conversations ADD COLUMN validation_report TEXT;
ALTER TABLE conversations ADD COLUMN enrichment_error TEXT;
ALTER TABLE conversations ADD COLUMN enriched_at TEXT;
ALTER TABLE conversations ADD COLUMN enrichment_started_at TEXT;
-- Conversations imported before this migration came as enriched files.
UPDATE conversations SET source_path = enriched_file_path, source_sha256 = enriched_sha256, enriched_at = created_at;

-- Prompt templates by emotional arc: the category prefixes pair ids
-- (`therapeutic_turn3`). Seeded with the original's arc → category table;
-- `lora-files scaffolding load` adds or replaces rows.
CREATE TABLE prompt_templates (
    arc_key TEXT NOT NULL CONSTRAINT prompt_templates_pkey PRIMARY KEY,
    id      TEXT,
    name    TEXT NOT NULL,
    data    TEXT NOT NULL
);
INSERT INTO prompt_templates (arc_key, id, name, data) VALUES
    ('shame_to_acceptance', NULL, 'therapeutic', '{"emotional_arc_type":"shame_to_acceptance","category":"therapeutic"}'),
    ('confusion_to_clarity', NULL, 'educational', '{"emotional_arc_type":"confusion_to_clarity","category":"educational"}'),
    ('anxiety_to_confidence', NULL, 'anxiety_management', '{"emotional_arc_type":"anxiety_to_confidence","category":"anxiety_management"}'),
    ('couple_conflict_to_alignment', NULL, 'conflict_resolution', '{"emotional_arc_type":"couple_conflict_to_alignment","category":"conflict_resolution"}'),
    ('emergency_to_calm', NULL, 'crisis_management', '{"emotional_arc_type":"emergency_to_calm","category":"crisis_management"}'),
    ('grief_to_healing', NULL, 'grief_support', '{"emotional_arc_type":"grief_to_healing","category":"grief_support"}'),
    ('overwhelm_to_empowerment', NULL, 'complexity_management', '{"emotional_arc_type":"overwhelm_to_empowerment","category":"complexity_management"}');
