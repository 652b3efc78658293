-- 0002: device registry. A loan's declared regions are the source of every policy signed
-- for its devices; installer keys are looked up by hash; one policy row per device version.

ALTER TABLE loans
    ADD COLUMN allowed_areas   jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(allowed_areas) = 'array'),
    ADD COLUMN forbidden_areas jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(forbidden_areas) = 'array');

CREATE UNIQUE INDEX users_api_key_hash ON users (api_key_hash) WHERE api_key_hash IS NOT NULL;

CREATE UNIQUE INDEX policies_device_version ON policies (device_id, version);
