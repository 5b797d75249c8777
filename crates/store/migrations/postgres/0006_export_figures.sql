-- Trainer-ready exports per version (crates/store/src/training_files/figures.rs):
-- each member states what its conversation adds to the OpenAI, ShareGPT and
-- Alpaca exports (bytes) and the o200k_base tokens of its OpenAI example, so
-- a version's figures are sums over its members, computed at commit without
-- reading the file. NULL: stored before this migration; such a version's
-- figures are computed on first use and kept in its row.
ALTER TABLE training_file_conversations ADD COLUMN openai_size BIGINT;
ALTER TABLE training_file_conversations ADD COLUMN sharegpt_size BIGINT;
ALTER TABLE training_file_conversations ADD COLUMN alpaca_size BIGINT;
ALTER TABLE training_file_conversations ADD COLUMN context_tokens BIGINT;
ALTER TABLE training_file_conversations ADD COLUMN training_tokens BIGINT;
ALTER TABLE training_file_conversations ADD COLUMN token_examples BIGINT;
ALTER TABLE training_file_conversations ADD COLUMN max_example_tokens BIGINT;
ALTER TABLE training_file_versions ADD COLUMN openai_size BIGINT;
ALTER TABLE training_file_versions ADD COLUMN sharegpt_size BIGINT;
ALTER TABLE training_file_versions ADD COLUMN alpaca_size BIGINT;
ALTER TABLE training_file_versions ADD COLUMN context_tokens BIGINT;
ALTER TABLE training_file_versions ADD COLUMN training_tokens BIGINT;
ALTER TABLE training_file_versions ADD COLUMN token_examples BIGINT;
ALTER TABLE training_file_versions ADD COLUMN max_example_tokens BIGINT;
