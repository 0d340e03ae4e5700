//! Agents: enrolment with a registration token, authentication by permanent token (and its
//! rotation), lookup by id or name, last-seen times and revocation.

use sqlx::Row;
use zedops_protocol::AgentInfo;

use super::{Fields, Store, StoreError, now};
use crate::secret::{self, TokenKind};

/// An agent as stored.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    pub id: String,
    pub name: String,
    pub last_seen: Option<i64>,
    pub info: Option<AgentInfo>,
}

impl Store {
    /// Enrols a new agent: consumes the registration token and creates the agent with a fresh
    /// permanent token, in one transaction (a refused name leaves the token unused).
    pub async fn enrol_agent(
        &self,
        registration_token: &str,
        name: &str,
        info: &AgentInfo,
    ) -> Result<(AgentRecord, String), StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let at = now();
            let agent_id = uuid::Uuid::new_v4().to_string();
            let consumed = sqlx::query(
                "UPDATE registration_tokens SET used_at = $1, used_by_agent = $2 \
             WHERE token_hash = $3 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $4",
            )
            .bind(at)
            .bind(&agent_id)
            .bind(secret::token_hash(registration_token))
            .bind(at)
            .execute(&mut *tx)
            .await?;
            if consumed.rows_affected() != 1 {
                return Err(StoreError::BadRegistrationToken);
            }
            // A name equal to an agent's id would make references to that agent ambiguous.
            let is_an_id: Option<String> =
                sqlx::query_scalar("SELECT id FROM agents WHERE id = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if is_an_id.is_some() || zedops_protocol::looks_like_agent_id(name) {
                return Err(StoreError::NameTaken(name.into()));
            }
            let token = secret::new_token(TokenKind::Agent);
            let mut insert = sqlx::query(
            "INSERT INTO agents (id, name, token_hash, created_at, last_seen, version, docker_version, engine_id, os, arch, hostname) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&agent_id)
        .bind(name)
        .bind(secret::token_hash(&token))
        .bind(at)
        .bind(at);
            for value in reported(info) {
                insert = insert.bind(value);
            }
            let inserted = insert.execute(&mut *tx).await;
            match inserted {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(StoreError::NameTaken(name.into()));
                }
                other => other?,
            };
            tx.commit().await?;
            let record = AgentRecord {
                id: agent_id,
                name: name.into(),
                last_seen: Some(at),
                info: Some(info.clone()),
            };
            Ok((record, token))
        })
    }

    /// Checks an agent's permanent token and records what it reports about itself.
    /// `None` when the id and token do not match a live agent.
    pub async fn authenticate_agent(
        &self,
        agent_id: &str,
        token: &str,
        info: &AgentInfo,
    ) -> Result<Option<AgentRecord>, StoreError> {
        with_pool!(self, |pool| {
            let at = now();
            // The token hash is the lookup key, so no secret is compared in the application.
            // A token being rotated (`next_token_hash`) is accepted too: the agent may have stored it
            // without its confirmation reaching the relay. Whichever token the agent proves it holds
            // becomes the only one.
            let hash = secret::token_hash(token);
            let mut update = sqlx::query(
            "UPDATE agents SET last_seen = $1, version = $2, docker_version = $3, engine_id = $4, os = $5, arch = $6, hostname = $7, \
             token_hash = $8, next_token_hash = NULL \
             WHERE id = $9 AND (token_hash = $8 OR next_token_hash = $8) AND revoked_at IS NULL RETURNING name",
        )
        .bind(at);
            for value in reported(info) {
                update = update.bind(value);
            }
            let row = update
                .bind(&hash)
                .bind(agent_id)
                .fetch_optional(pool)
                .await?;
            Ok(row.map(|r| AgentRecord {
                id: agent_id.into(),
                name: r.get("name"),
                last_seen: Some(at),
                info: Some(info.clone()),
            }))
        })
    }

    /// Records when an agent was last heard from.
    pub async fn touch_agent(&self, agent_id: &str, at: i64) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE agents SET last_seen = $1 WHERE id = $2")
                .bind(at)
                .bind(agent_id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// All live (not revoked) agents, by name.
    pub async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let sql = "SELECT id, name, last_seen, version, docker_version, engine_id, os, arch, hostname \
             FROM agents WHERE revoked_at IS NULL ORDER BY name";
        Ok(self.select_all(sql, agent_from_row).await?)
    }

    /// The live agent with this id or name.
    pub async fn find_agent(&self, id_or_name: &str) -> Result<Option<AgentRecord>, StoreError> {
        with_pool!(self, |pool| {
            // The id first, exactly; a name only when no agent has that id and the reference
            // cannot be an id (see `Hub::agent`).
            const COLUMNS: &str = "SELECT id, name, last_seen, version, docker_version, engine_id, os, arch, hostname FROM agents";
            let by_id = sqlx::query(&format!("{COLUMNS} WHERE revoked_at IS NULL AND id = $1"))
                .bind(id_or_name)
                .fetch_optional(pool)
                .await?;
            if by_id.is_some() || zedops_protocol::looks_like_agent_id(id_or_name) {
                return Ok(by_id.as_ref().map(agent_from_row));
            }
            let by_name = sqlx::query(&format!("{COLUMNS} WHERE revoked_at IS NULL AND name = $1"))
                .bind(id_or_name)
                .fetch_optional(pool)
                .await?;
            Ok(by_name.as_ref().map(agent_from_row))
        })
    }

    /// Agents whose name is another agent's id (refused since names may not look like ids, but
    /// possibly in a database from before): `(named, id_owner)` pairs, for a warning at start.
    pub async fn agent_name_clashes(&self) -> Result<Vec<(AgentRecord, AgentRecord)>, StoreError> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT a.id AS a_id, a.name AS a_name, b.id AS b_id, b.name AS b_name \
             FROM agents a JOIN agents b ON a.name = b.id AND a.id <> b.id \
             WHERE a.revoked_at IS NULL AND b.revoked_at IS NULL",
            )
            .fetch_all(pool)
            .await?;
            let record = |id: String, name: String| AgentRecord {
                id,
                name,
                last_seen: None,
                info: None,
            };
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        record(r.get("a_id"), r.get("a_name")),
                        record(r.get("b_id"), r.get("b_name")),
                    )
                })
                .collect())
        })
    }

    /// Revokes an agent by id or name; its token stops working.
    pub async fn revoke_agent(&self, id_or_name: &str) -> Result<AgentRecord, StoreError> {
        with_pool!(self, |pool| {
            let agent = self
                .find_agent(id_or_name)
                .await?
                .ok_or_else(|| StoreError::NoSuchAgent(id_or_name.into()))?;
            sqlx::query("UPDATE agents SET revoked_at = $1 WHERE id = $2")
                .bind(now())
                .bind(&agent.id)
                .execute(pool)
                .await?;
            Ok(agent)
        })
    }

    /// Revokes the agent with exactly this id (an agent forgetting itself: no name lookup, so
    /// no other agent can be meant). Returns its name, or `None` when it was not live.
    pub async fn revoke_agent_id(&self, agent_id: &str) -> Result<Option<String>, StoreError> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_scalar(
            "UPDATE agents SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING name",
        )
        .bind(now())
        .bind(agent_id)
        .fetch_optional(pool)
        .await?)
        })
    }

    /// Starts rotating an agent's token: `next_hash` is accepted alongside the current token
    /// until [`finish_rotation`](Self::finish_rotation) or the agent's next authentication.
    pub async fn begin_rotation(&self, agent_id: &str, next_hash: &str) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE agents SET next_token_hash = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(next_hash)
            .bind(agent_id)
            .execute(pool)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NoSuchAgent(agent_id.into()));
            }
            Ok(())
        })
    }

    /// The agent confirmed it stored the new token: it replaces the old one, which is refused
    /// from now on. False when the rotation was settled otherwise meanwhile (the agent
    /// reconnected, or it was revoked).
    pub async fn finish_rotation(
        &self,
        agent_id: &str,
        next_hash: &str,
    ) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE agents SET token_hash = next_token_hash, next_token_hash = NULL \
             WHERE id = $1 AND next_token_hash = $2 AND revoked_at IS NULL",
            )
            .bind(agent_id)
            .bind(next_hash)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The agent said it could not store the new token: forget it, the old one stays.
    pub async fn abort_rotation(&self, agent_id: &str, next_hash: &str) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE agents SET next_token_hash = NULL WHERE id = $1 AND next_token_hash = $2",
            )
            .bind(agent_id)
            .bind(next_hash)
            .execute(pool)
            .await?;
            Ok(())
        })
    }
}

/// What an agent reports about itself, in the order of the columns `version, docker_version,
/// engine_id, os, arch, hostname`, which the queries that record it bind one after another.
fn reported(info: &AgentInfo) -> [Option<&str>; 6] {
    [
        Some(&info.version),
        info.docker_version.as_deref(),
        info.engine_id.as_deref(),
        Some(&info.os),
        Some(&info.arch),
        info.hostname.as_deref(),
    ]
}

fn agent_from_row(r: &(impl Fields + ?Sized)) -> AgentRecord {
    AgentRecord {
        id: r.text("id"),
        name: r.text("name"),
        last_seen: r.opt_int("last_seen"),
        info: r.opt_text("version").map(|version| AgentInfo {
            version,
            docker_version: r.opt_text("docker_version"),
            engine_id: r.opt_text("engine_id"),
            os: r.opt_text("os").unwrap_or_default(),
            arch: r.opt_text("arch").unwrap_or_default(),
            hostname: r.opt_text("hostname"),
        }),
    }
}
