//! Secrets: random tokens, their stored hashes, and argon2id password hashing.
//!
//! Tokens carry 256 random bits, so a plain SHA-256 is enough to store them: there is nothing to
//! brute-force. Passwords are chosen by people, so they get argon2id.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Which kind of token; the prefix makes a leaked token recognisable in logs and scanners.
#[derive(Debug, Clone, Copy)]
pub enum TokenKind {
    /// Single-use agent enrolment token.
    Registration,
    /// An agent's permanent token.
    Agent,
    /// A device session of a user (app or CLI).
    Device,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Registration => "zr_",
            TokenKind::Agent => "za_",
            TokenKind::Device => "zd_",
        }
    }
}

/// A fresh token: prefix + 32 random bytes in URL-safe base64.
pub fn new_token(kind: TokenKind) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{}{}",
        kind.prefix(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What the database stores for a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// argon2id hash (PHC string) of a password.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks a password against a stored hash; a malformed hash never matches. The relay uses
/// [`verify_password_in`]; this plain form is the reference its test compares with.
#[cfg(test)]
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Checks a password against a stored hash (a malformed hash never matches), computing in `memory` (grown once to the hash's
/// memory cost, then reused), so that a relay checking passwords all day keeps a fixed set of
/// buffers instead of allocating and freeing ~19 MiB per check, which the allocator may keep.
pub fn verify_password_in(password: &str, hash: &str, memory: &mut Vec<argon2::Block>) -> bool {
    let mut check = || -> Option<bool> {
        let parsed = PasswordHash::new(hash).ok()?;
        let algorithm = argon2::Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(v) => argon2::Version::try_from(v).ok()?,
            None => argon2::Version::default(),
        };
        let params = argon2::Params::try_from(&parsed).ok()?;
        let expected = parsed.hash?;
        let mut salt = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
        let blocks = params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        let mut out = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                &mut out,
                &mut memory[..blocks],
            )
            .ok()?;
        Some(subtle::ConstantTimeEq::ct_eq(out.as_slice(), expected.as_bytes()).into())
    };
    check().unwrap_or(false)
}

/// A valid hash of a password nobody has, verified when the user does not exist so that an
/// unknown user name takes as long to refuse as a wrong password.
pub fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("zedops-no-such-user").expect("argon2 hashes a fixed input"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hashed() {
        let a = new_token(TokenKind::Agent);
        let b = new_token(TokenKind::Agent);
        assert_ne!(a, b);
        assert!(a.starts_with("za_") && a.len() == 3 + 43, "{a}");
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn passwords_verify_in_reused_memory_only_with_the_right_one() {
        let hash = hash_password("hunter2-long").unwrap();
        let mut memory = Vec::new();
        assert!(verify_password_in("hunter2-long", &hash, &mut memory));
        assert!(!verify_password_in("hunter3-long", &hash, &mut memory));
        assert!(verify_password_in("hunter2-long", &hash, &mut memory));
        assert!(!verify_password_in(
            "hunter2-long",
            "not a hash",
            &mut memory
        ));
    }

    #[test]
    fn passwords_verify_only_with_the_right_one() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
    }
}
