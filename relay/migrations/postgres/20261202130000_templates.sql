-- Container templates (issue 14): one row per template with its current version, and every
-- version ever saved, so a container's zedops.template.version label can be traced to the
-- specification it was made from. Bodies are JSON text (protocol::TemplateBody), kept as the
-- relay wrote them; they hold no secrets (secret variables may not have defaults).

CREATE TABLE templates (
    name        TEXT COLLATE "C" PRIMARY KEY,
    version     BIGINT NOT NULL,
    body        TEXT NOT NULL,
    created_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_by  TEXT,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE template_versions (
    name        TEXT COLLATE "C" NOT NULL,
    version     BIGINT NOT NULL,
    body        TEXT NOT NULL,
    saved_by    TEXT,
    saved_at    BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
