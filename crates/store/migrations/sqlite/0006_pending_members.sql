-- Members a change in flight has written (crates/store/src/training_files/segments.rs):
-- a change stages its new member rows here as it writes their fragments, so
-- its memory does not grow with what it adds, and its commit moves them into
-- training_file_conversations in the transaction that commits its version.
-- An attempt that will not commit deletes its rows; a crash leaves them for
-- `lora-files doctor --repair` (by age, like segments still 'writing').
-- The same columns as training_file_conversations (SQLite has no
-- CREATE TABLE ... LIKE), with the attempt that staged each row first.
CREATE TABLE training_file_pending_members AS SELECT '' AS attempt, * FROM training_file_conversations WHERE 0;
CREATE INDEX idx_training_file_pending_members_attempt ON training_file_pending_members (attempt);
