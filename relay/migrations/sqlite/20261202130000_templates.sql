-- Container templates (issue 14): one row per template with its current version, and every
-- version ever saved, so a container's zedops.template.version label can be traced to the
-- specification it was made from. Bodies are JSON (protocol::TemplateBody); they hold no
-- secrets (secret variables may not have defaults).

CREATE TABLE templates (
    name        TEXT PRIMARY KEY,
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    updated_by  TEXT,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE template_versions (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    saved_by    TEXT,
    saved_at    INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
