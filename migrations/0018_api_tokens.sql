-- Named tokens of a tenant, made and revoked by its tenant-admin (`/v1/tokens`): each acts
-- with one role, optionally narrowed to scopes, until it expires or is revoked (deleted).
-- Stored as the SHA-256 of the secret, like the tenant's own token.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    -- A tenant's token never acts as the platform admin.
    role         text NOT NULL CHECK (role IN ('admin', 'tenant-admin', 'member', 'viewer', 'billing'))
                 CONSTRAINT api_tokens_role_not_admin CHECK (role <> 'admin'),
    -- NULL: all the role allows.
    scopes       text[] CHECK (scopes <@ ARRAY['allocations:read', 'allocations:write', 'policies:read', 'policies:write',
                                               'webhooks:read', 'webhooks:write', 'events:read', 'inventory:read',
                                               'usage:read']::text[]),
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    expires_at   timestamptz,
    -- Written at most once a minute per token, by the lookup that authenticates it.
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Caller.who of whoever made it.
    created_by   text NOT NULL,
    UNIQUE (tenant_id, name)
);
