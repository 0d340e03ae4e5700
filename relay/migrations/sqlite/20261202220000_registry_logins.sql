-- Logins to private image registries (issue 14), one per registry server. The password is
-- sealed with ChaCha20-Poly1305 under the key in the relay's registry.key file (not in the
-- database), bound to the server name: `secret` is base64 of nonce || ciphertext || tag.

CREATE TABLE registry_logins (
    server      TEXT PRIMARY KEY,
    username    TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    updated_by  TEXT,
    updated_at  INTEGER NOT NULL
);
