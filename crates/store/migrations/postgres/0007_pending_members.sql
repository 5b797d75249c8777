-- Members a change in flight has written (crates/store/src/training_files/segments.rs):
-- a change stages its new member rows here as it writes their fragments, so
-- its memory does not grow with what it adds, and its commit moves them into
-- training_file_conversations in the transaction that commits its version.
-- An attempt that will not commit deletes its rows; a crash leaves them for
-- `lora-files doctor --repair` (by age, like segments still 'writing').
CREATE TABLE training_file_pending_members (LIKE training_file_conversations INCLUDING DEFAULTS);
ALTER TABLE training_file_pending_members ADD COLUMN attempt TEXT NOT NULL;
CREATE INDEX idx_training_file_pending_members_attempt ON training_file_pending_members (attempt);
GRANT SELECT, INSERT, UPDATE, DELETE ON training_file_pending_members TO lora_files_app;
ALTER TABLE training_file_pending_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY training_file_pending_members_owner ON training_file_pending_members FOR ALL TO lora_files_app
    USING (owner_id = current_setting('lora_files.user_id', true))
    WITH CHECK (owner_id = current_setting('lora_files.user_id', true));
