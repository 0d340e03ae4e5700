//! Registration tokens: single-use, expiring tokens that enrol an agent; listed and revoked by
//! id, never shown again after creation (only their hashes are stored).

use std::time::Duration;

use super::{Fields, Store, StoreError, now};
use crate::secret::{self, TokenKind};

/// A registration token as stored, without the token or its hash.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by_agent: Option<String>,
    pub revoked_at: Option<i64>,
}

impl TokenRow {
    /// `valid`, `used`, `expired` or `revoked`, as of `now`.
    pub fn state(&self, now: i64) -> &'static str {
        if self.used_at.is_some() {
            "used"
        } else if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at <= now {
            "expired"
        } else {
            "valid"
        }
    }
}

impl Store {
    /// Creates a single-use registration token valid for `ttl`.
    pub async fn create_registration_token(&self, ttl: Duration) -> Result<String, StoreError> {
        Ok(self.create_registration_token_with_id(ttl).await?.1)
    }

    /// Creates a single-use registration token valid for `ttl`; its id and the token.
    pub async fn create_registration_token_with_id(
        &self,
        ttl: Duration,
    ) -> Result<(String, String), StoreError> {
        with_pool!(self, |pool| {
            let token = secret::new_token(TokenKind::Registration);
            let id = uuid::Uuid::new_v4().to_string();
            let created = now();
            sqlx::query("INSERT INTO registration_tokens (id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(secret::token_hash(&token))
            .bind(created)
            .bind(created + ttl.as_secs() as i64)
            .execute(pool)
            .await?;
            Ok((id, token))
        })
    }

    /// Registration tokens, newest first (at most 1000): never the tokens or their hashes.
    pub async fn registration_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let sql = "SELECT id, created_at, expires_at, used_at, used_by_agent, revoked_at \
             FROM registration_tokens ORDER BY created_at DESC, id LIMIT 1000";
        Ok(self.select_all(sql, token_from_row).await?)
    }

    /// Revokes an unused registration token by id, so it can no longer enrol an agent.
    /// Revoking a revoked or expired token again is harmless; a used one is refused.
    pub async fn revoke_registration_token(&self, id: &str) -> Result<TokenRow, StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE registration_tokens SET revoked_at = $1 \
             WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL",
            )
            .bind(now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(
                "SELECT id, created_at, expires_at, used_at, used_by_agent, revoked_at \
             FROM registration_tokens WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            let row = row
                .as_ref()
                .map(token_from_row)
                .ok_or_else(|| StoreError::NoSuchToken(id.into()))?;
            if row.used_at.is_some() {
                return Err(StoreError::TokenUsed(id.into()));
            }
            Ok(row)
        })
    }
}

fn token_from_row(r: &(impl Fields + ?Sized)) -> TokenRow {
    TokenRow {
        id: r.text("id"),
        created_at: r.int("created_at"),
        expires_at: r.int("expires_at"),
        used_at: r.opt_int("used_at"),
        used_by_agent: r.opt_text("used_by_agent"),
        revoked_at: r.opt_int("revoked_at"),
    }
}
