//! `zedops-relay migrate`: copies one relay's SQLite database into an empty PostgreSQL database
//! (users, sessions, tokens, agents, audit log, templates), so a single relay can join a
//! cluster. The copy is one transaction on the target: it lands whole or not at all.

use super::{Backend, Fields, Store, StoreError};

/// How a column is read from the source and bound on the target.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Flag,
}

/// A value on its way from one database to the other.
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Flag(bool),
}

use Kind::{Flag, Int, Text};

/// A table: its name, the key it is read in order of, and its columns.
type Table = (&'static str, &'static str, &'static [(&'static str, Kind)]);

/// Every table the relay keeps, parents before the tables that refer to them, with every
/// column. A table missing here makes [`copy`] refuse (see `unknown_tables`), so a migration
/// that adds one cannot be forgotten silently.
const TABLES: &[Table] = &[
    (
        "users",
        "id",
        &[
            ("id", Text),
            ("name", Text),
            ("password_hash", Text),
            ("role", Text),
            ("disabled", Flag),
            ("created_at", Int),
        ],
    ),
    (
        "device_sessions",
        "id",
        &[
            ("id", Text),
            ("user_id", Text),
            ("token_hash", Text),
            ("device", Text),
            ("created_at", Int),
            ("last_used_at", Int),
            ("revoked_at", Int),
        ],
    ),
    (
        "agents",
        "id",
        &[
            ("id", Text),
            ("name", Text),
            ("token_hash", Text),
            ("created_at", Int),
            ("last_seen", Int),
            ("version", Text),
            ("docker_version", Text),
            ("engine_id", Text),
            ("os", Text),
            ("arch", Text),
            ("hostname", Text),
            ("revoked_at", Int),
            ("next_token_hash", Text),
        ],
    ),
    (
        "registration_tokens",
        "id",
        &[
            ("id", Text),
            ("token_hash", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
            ("used_by_agent", Text),
            ("revoked_at", Int),
        ],
    ),
    (
        "audit_log",
        "id",
        &[
            ("id", Int),
            ("at", Int),
            ("user_name", Text),
            ("session_id", Text),
            ("agent_id", Text),
            ("container", Text),
            ("operation", Text),
            ("result", Text),
            ("error_code", Text),
            ("target", Text),
            ("detail", Text),
        ],
    ),
    (
        "templates",
        "name",
        &[
            ("name", Text),
            ("version", Int),
            ("body", Text),
            ("created_by", Text),
            ("created_at", Int),
            ("updated_by", Text),
            ("updated_at", Int),
        ],
    ),
    (
        "template_versions",
        "name, version",
        &[
            ("name", Text),
            ("version", Int),
            ("body", Text),
            ("saved_by", Text),
            ("saved_at", Int),
        ],
    ),
    (
        // Copied sealed: the target relays need the same registry.key file.
        "registry_logins",
        "server",
        &[
            ("server", Text),
            ("username", Text),
            ("secret", Text),
            ("created_by", Text),
            ("created_at", Int),
            ("updated_by", Text),
            ("updated_at", Int),
        ],
    ),
];

/// Rows read from the source at a time, so a long audit log is copied in bounded memory.
const BATCH: i64 = 1000;

/// Why a copy was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the source must be a SQLite database and the target a PostgreSQL database")]
    WrongBackends,
    #[error(
        "the target database is not empty: table {table} has {rows} rows. Migrate into a new, empty database"
    )]
    TargetNotEmpty { table: &'static str, rows: i64 },
    #[error(
        "the source has tables this relay does not know how to copy ({0}); use the zedops-relay version that made the database"
    )]
    UnknownTables(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CopyError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

/// Copies every row of `from` (SQLite) into `to` (PostgreSQL, empty, its schema already
/// migrated by [`Store::open`]). Returns the rows copied per table.
pub async fn copy(from: &Store, to: &Store) -> Result<Vec<(&'static str, u64)>, CopyError> {
    let (Backend::Sqlite(source), Backend::Postgres(target)) = (&from.pool, &to.pool) else {
        return Err(CopyError::WrongBackends);
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(source)
    .await?;
    let unknown: Vec<String> = names
        .into_iter()
        .filter(|n| !TABLES.iter().any(|(table, _, _)| table == n))
        .collect();
    if !unknown.is_empty() {
        return Err(CopyError::UnknownTables(unknown.join(", ")));
    }
    let mut tx = target.begin().await?;
    for (table, _, _) in TABLES {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await?;
        if rows > 0 {
            return Err(CopyError::TargetNotEmpty { table, rows });
        }
    }
    let mut copied = Vec::new();
    for (table, key, columns) in TABLES {
        let list = columns
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
            .join(", ");
        let select = format!("SELECT {list} FROM {table} ORDER BY {key} LIMIT $1 OFFSET $2");
        let params = (1..=columns.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let insert = format!("INSERT INTO {table} ({list}) VALUES ({params})");
        let mut count = 0u64;
        loop {
            let rows = sqlx::query(&select)
                .bind(BATCH)
                .bind(count as i64)
                .fetch_all(source)
                .await?;
            let batch: Vec<Vec<Value>> = rows.iter().map(|r| read(r, columns)).collect();
            for row in &batch {
                let mut query = sqlx::query(&insert);
                for value in row {
                    query = match value {
                        Value::Text(v) => query.bind(v.as_deref()),
                        Value::Int(v) => query.bind(*v),
                        Value::Flag(v) => query.bind(*v),
                    };
                }
                query.execute(&mut *tx).await?;
            }
            count += batch.len() as u64;
            if (batch.len() as i64) < BATCH {
                break;
            }
        }
        copied.push((*table, count));
    }
    // Entries written after the move continue the source's numbering.
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('audit_log', 'id'), \
         GREATEST(COALESCE(MAX(id), 0), 1), MAX(id) IS NOT NULL) FROM audit_log",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(copied)
}

fn read(row: &impl Fields, columns: &[(&str, Kind)]) -> Vec<Value> {
    columns
        .iter()
        .map(|(column, kind)| match kind {
            Text => Value::Text(row.opt_text(column)),
            Int => Value::Int(row.opt_int(column)),
            Flag => Value::Flag(row.flag(column)),
        })
        .collect()
}
