//! API keys, console sessions and user tokens.
//!
//! A key is `sk_` or `pk_`, an 8-character key id, `_`, and 32 random bytes in hex. Only the SHA-256 of
//! the whole key is stored; the key id alone identifies it in listings and for revocation.
//!
//! A public key acts for one shopper at a time: the shop's backend (holding a secret key) asks
//! `POST /v1/user-tokens` for a short-lived token `user_id_hex.issued_ms.expiry_ms.hmac_hex`, signed with the
//! tenant's user-token secret, and the shop's frontend sends it as `X-Attune-User-Token`. The issue time lets a
//! user's tokens be revoked (on erasure, or on request) by refusing those issued before a moment. Tokens of the
//! earlier form `user_id_hex.expiry_ms.hmac_hex` are read as issued the longest lifetime before they expire.

use attune_core::{ApiKeyKind, Tenant, TenantId, Timestamp, UserId};
use attune_store::{ApiKeyRecord, ConsoleSessionRecord, Store, StoreError};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Hex SHA-256 of a presented key, the form in which keys are stored and looked up.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0_u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// A newly created key: the record as stored and the key text, shown once.
pub struct CreatedApiKey {
    pub record: ApiKeyRecord,
    pub key: String,
}

/// Create and store a key for an existing tenant.
pub fn create_api_key(
    store: &dyn Store,
    tenant: &TenantId,
    kind: ApiKeyKind,
    label: &str,
) -> Result<CreatedApiKey, StoreError> {
    let key_id = random_hex(4);
    let key = format!("{}{key_id}_{}", kind.prefix(), random_hex(32));
    let record = ApiKeyRecord {
        key_id,
        tenant_id: tenant.clone(),
        kind,
        label: label.to_string(),
        secret_hash: hash_api_key(&key),
        created_at: Timestamp::now(),
        revoked_at: None,
    };
    store.insert_api_key(&record)?;
    Ok(CreatedApiKey { record, key })
}

/// Create a tenant with a fresh user-token secret.
pub fn create_tenant(store: &dyn Store, id: &TenantId, name: &str) -> Result<Tenant, StoreError> {
    let tenant = Tenant { id: id.clone(), name: name.to_string(), created_at: Timestamp::now() };
    let mut secret = vec![0_u8; 32];
    rand::rng().fill_bytes(&mut secret);
    store.create_tenant(&tenant, &secret)?;
    Ok(tenant)
}

/// The tenant, created first if it does not exist yet.
pub fn ensure_tenant(store: &dyn Store, id: &TenantId, name: &str) -> Result<Tenant, StoreError> {
    if let Some(tenant) = store.tenant(id)? {
        return Ok(tenant);
    }
    match create_tenant(store, id, name) {
        Ok(tenant) => Ok(tenant),
        // Another process created it between the read and the write.
        Err(StoreError::Conflict(_)) => store.tenant(id)?.ok_or_else(|| StoreError::Corrupt("tenant vanished".into())),
        Err(other) => Err(other),
    }
}

/// How long a console sign-in lasts.
pub const CONSOLE_SESSION_TTL_MS: i64 = 12 * 3_600_000;

/// Starts a console session of `tenant` signed in with key `key_id`: returns the token for the browser's cookie
/// and the stored record (which holds only the token's hash).
pub fn start_console_session(
    store: &dyn Store,
    tenant: &TenantId,
    key_id: &str,
    user_agent: &str,
) -> Result<(String, ConsoleSessionRecord), StoreError> {
    let token = random_hex(32);
    let now = Timestamp::now();
    let record = ConsoleSessionRecord {
        session_id: random_hex(8),
        token_hash: hash_api_key(&token),
        tenant_id: tenant.clone(),
        key_id: key_id.to_string(),
        form_token: random_hex(32),
        user_agent: user_agent.chars().filter(|c| !c.is_control()).take(200).collect(),
        created_at: now,
        expires_at: Timestamp::from_millis(now.millis() + CONSOLE_SESSION_TTL_MS)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
    };
    store.create_console_session(&record)?;
    Ok((token, record))
}

/// The longest a user token may live.
pub const MAX_USER_TOKEN_TTL_MS: i64 = 7 * 86_400_000;

fn token_signature(secret: &[u8], signed: &str) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(signed.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Sign a token that lets a public key act for `user` from `issued` until `expires`.
pub fn sign_user_token(secret: &[u8], user: &UserId, issued: Timestamp, expires: Timestamp) -> String {
    let signed = format!("{}.{}.{}", hex::encode(user.as_str()), issued.millis(), expires.millis());
    let signature = hex::encode(token_signature(secret, &signed));
    format!("{signed}.{signature}")
}

/// Why a user token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserTokenError {
    #[error("the user token is malformed")]
    Malformed,
    #[error("the user token's signature does not match")]
    BadSignature,
    #[error("the user token has expired")]
    Expired,
}

/// A user token whose signature and expiry were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUserToken {
    /// The user it speaks for.
    pub user: UserId,
    /// When it was issued.
    pub issued_ms: i64,
}

/// Check a token's signature and expiry.
pub fn verify_user_token(secret: &[u8], token: &str, now: Timestamp) -> Result<VerifiedUserToken, UserTokenError> {
    let (signed, signature) = token.rsplit_once('.').ok_or(UserTokenError::Malformed)?;
    let parts: Vec<&str> = signed.split('.').collect();
    let (user_hex, issued, expires) = match parts[..] {
        [user_hex, issued, expires] => (user_hex, Some(issued), expires),
        [user_hex, expires] => (user_hex, None, expires),
        _ => return Err(UserTokenError::Malformed),
    };
    let number = |text: &str| text.parse::<i64>().map_err(|_| UserTokenError::Malformed);
    let expires_ms = number(expires)?;
    let issued_ms = match issued {
        Some(issued) => number(issued)?,
        None => expires_ms.saturating_sub(MAX_USER_TOKEN_TTL_MS),
    };
    let presented = hex::decode(signature).map_err(|_| UserTokenError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(signed.as_bytes());
    mac.verify_slice(&presented).map_err(|_| UserTokenError::BadSignature)?;
    if expires_ms < now.millis() {
        return Err(UserTokenError::Expired);
    }
    let user = hex::decode(user_hex).map_err(|_| UserTokenError::Malformed)?;
    let user = String::from_utf8(user).map_err(|_| UserTokenError::Malformed)?;
    Ok(VerifiedUserToken { user: UserId::parse(user).map_err(|_| UserTokenError::Malformed)?, issued_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_tokens_verify_and_expire() {
        let user = UserId::parse("17850").unwrap();
        let now = Timestamp::now();
        let later = Timestamp::from_millis(now.millis() + 60_000).unwrap();
        let token = sign_user_token(b"secret", &user, now, later);
        let verified = verify_user_token(b"secret", &token, now).unwrap();
        assert_eq!(verified, VerifiedUserToken { user: user.clone(), issued_ms: now.millis() });
        let reissued = token.replacen(&format!(".{}.", now.millis()), &format!(".{}.", now.millis() + 1), 1);
        assert_eq!(verify_user_token(b"secret", &reissued, now).unwrap_err(), UserTokenError::BadSignature);
        // The earlier form, without the issue time, still verifies.
        let user_hex = hex::encode("17850");
        let legacy = format!("{user_hex}.{}", later.millis());
        let legacy = format!("{legacy}.{}", hex::encode(token_signature(b"secret", &legacy)));
        let verified = verify_user_token(b"secret", &legacy, now).unwrap();
        assert_eq!(verified.issued_ms, later.millis() - MAX_USER_TOKEN_TTL_MS);
        assert_eq!(verify_user_token(b"other", &token, now).unwrap_err(), UserTokenError::BadSignature);
        let after = Timestamp::from_millis(later.millis() + 1).unwrap();
        assert_eq!(verify_user_token(b"secret", &token, after).unwrap_err(), UserTokenError::Expired);
        let forged = token.replacen(&hex::encode("17850"), &hex::encode("17851"), 1);
        assert_eq!(verify_user_token(b"secret", &forged, now).unwrap_err(), UserTokenError::BadSignature);
        assert_eq!(verify_user_token(b"secret", "garbage", now).unwrap_err(), UserTokenError::Malformed);
    }
}
