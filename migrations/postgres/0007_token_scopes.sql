-- Token scopes: a token may be limited to a subset of its user's roles (comma-separated role
-- names; empty means all of them), so a service or a device gets least privilege.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
