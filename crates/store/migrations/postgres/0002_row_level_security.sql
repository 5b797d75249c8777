-- Row-level security (PostgreSQL only). The service connects and then
-- `SET ROLE lora_files_app`, a role that is neither superuser nor owner of
-- these tables, so these policies really apply; each transaction names its
-- acting user with set_config('lora_files.user_id', …, true). With no acting
-- user, current_setting(…, true) is NULL and no row matches: there is no
-- anonymous access. Fixes the original's USING(true) reads and missing
-- DELETE policies (original-system.md §1).

-- Roles are shared by the whole cluster: another database may be creating
-- the same role or membership at this moment, which is fine.
DO $$
BEGIN
    CREATE ROLE lora_files_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
DO $$
BEGIN
    EXECUTE 'GRANT lora_files_app TO ' || quote_ident(current_user);
EXCEPTION WHEN unique_violation THEN
    NULL;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON users, conversations, training_files,
    training_file_conversations, training_file_versions TO lora_files_app;
GRANT SELECT ON personas, emotional_arcs, training_topics TO lora_files_app;

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE training_files ENABLE ROW LEVEL SECURITY;
ALTER TABLE training_file_conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE training_file_versions ENABLE ROW LEVEL SECURITY;

CREATE POLICY users_self ON users FOR ALL TO lora_files_app
    USING (id = current_setting('lora_files.user_id', true))
    WITH CHECK (id = current_setting('lora_files.user_id', true));
CREATE POLICY conversations_owner ON conversations FOR ALL TO lora_files_app
    USING (owner_id = current_setting('lora_files.user_id', true))
    WITH CHECK (owner_id = current_setting('lora_files.user_id', true));
CREATE POLICY training_files_owner ON training_files FOR ALL TO lora_files_app
    USING (owner_id = current_setting('lora_files.user_id', true))
    WITH CHECK (owner_id = current_setting('lora_files.user_id', true));
CREATE POLICY training_file_conversations_owner ON training_file_conversations FOR ALL TO lora_files_app
    USING (owner_id = current_setting('lora_files.user_id', true))
    WITH CHECK (owner_id = current_setting('lora_files.user_id', true));
CREATE POLICY training_file_versions_owner ON training_file_versions FOR ALL TO lora_files_app
    USING (owner_id = current_setting('lora_files.user_id', true))
    WITH CHECK (owner_id = current_setting('lora_files.user_id', true));

-- Logging in happens before anyone is acting: this one lookup runs with the
-- rights of the migration's owner and returns only the row asked for.
CREATE FUNCTION lora_files_user_by_email(p_email TEXT)
    RETURNS TABLE (id TEXT, email TEXT, password_hash TEXT, created_at TEXT)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT u.id, u.email, u.password_hash, u.created_at FROM users u WHERE u.email = lower(p_email)
$$;
REVOKE ALL ON FUNCTION lora_files_user_by_email(TEXT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lora_files_user_by_email(TEXT) TO lora_files_app;
