-- 007_tokens.sql — tokens made over the API may expire (NULL = never).
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
