-- SMART on FHIR launch and browser sessions (SPEC §5, §8).
-- A browser session is an api_tokens row whose secret lives in an HttpOnly cookie; it also has
-- an idle timeout (last_used_at is refreshed at most once a minute) and the launch context the
-- EHR gave (room, whether the EHR shows its own patient banner), as JSON.
ALTER TABLE api_tokens ADD COLUMN idle_timeout_ms BIGINT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN context TEXT;

-- An authorization request in flight (SMART launch or standalone sign-in). Keyed by a hash of
-- `state`; `browser_hash` binds it to the cookie of the browser that started it; taken (deleted)
-- by the callback, so a state or a code is good once.
CREATE TABLE auth_requests (
    state_hash    TEXT PRIMARY KEY,
    browser_hash  TEXT NOT NULL,
    flow          TEXT NOT NULL CHECK (flow IN ('smart', 'oidc')),
    issuer        TEXT NOT NULL,
    launch        TEXT,
    pkce_verifier TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX auth_requests_created ON auth_requests(created_at);

-- Clinicians who open a patient's room from the EHR chart join it with their own reason.
ALTER TABLE room_members DROP CONSTRAINT room_members_reason_check;
ALTER TABLE room_members ADD CONSTRAINT room_members_reason_check
    CHECK (reason IN ('attending', 'consulting', 'admitting', 'unit_team', 'on_call', 'invited',
                      'break_glass', 'creator', 'ehr_launch'));
