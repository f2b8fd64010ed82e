//! API keys and user tokens.
//!
//! A key is `sk_` or `pk_`, an 8-character key id, `_`, and 32 random bytes in hex. Only the SHA-256 of
//! the whole key is stored; the key id alone identifies it in listings and for revocation.
//!
//! A public key acts for one shopper at a time: the shop's backend (holding a secret key) asks
//! `POST /v1/user-tokens` for a short-lived token `user_id_hex.expiry_ms.hmac_hex`, signed with the
//! tenant's user-token secret, and the shop's frontend sends it as `X-Attune-User-Token`.

use attune_core::{ApiKeyKind, Tenant, TenantId, Timestamp, UserId};
use attune_store::{ApiKeyRecord, Store, StoreError};
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

fn token_signature(secret: &[u8], user_hex: &str, expires_ms: i64) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(user_hex.as_bytes());
    mac.update(b".");
    mac.update(expires_ms.to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Sign a token that lets a public key act for `user` until `expires`.
pub fn sign_user_token(secret: &[u8], user: &UserId, expires: Timestamp) -> String {
    let user_hex = hex::encode(user.as_str());
    let signature = token_signature(secret, &user_hex, expires.millis());
    format!("{user_hex}.{}.{signature}", expires.millis())
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

/// Check a token's signature and expiry; the user it speaks for.
pub fn verify_user_token(secret: &[u8], token: &str, now: Timestamp) -> Result<UserId, UserTokenError> {
    let mut parts = token.split('.');
    let (Some(user_hex), Some(expires), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(UserTokenError::Malformed);
    };
    let expires_ms: i64 = expires.parse().map_err(|_| UserTokenError::Malformed)?;
    let presented = hex::decode(signature).map_err(|_| UserTokenError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(user_hex.as_bytes());
    mac.update(b".");
    mac.update(expires_ms.to_string().as_bytes());
    mac.verify_slice(&presented).map_err(|_| UserTokenError::BadSignature)?;
    if expires_ms < now.millis() {
        return Err(UserTokenError::Expired);
    }
    let user = hex::decode(user_hex).map_err(|_| UserTokenError::Malformed)?;
    let user = String::from_utf8(user).map_err(|_| UserTokenError::Malformed)?;
    UserId::parse(user).map_err(|_| UserTokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_tokens_verify_and_expire() {
        let user = UserId::parse("17850").unwrap();
        let now = Timestamp::now();
        let later = Timestamp::from_millis(now.millis() + 60_000).unwrap();
        let token = sign_user_token(b"secret", &user, later);
        assert_eq!(verify_user_token(b"secret", &token, now).unwrap(), user);
        assert_eq!(verify_user_token(b"other", &token, now).unwrap_err(), UserTokenError::BadSignature);
        let after = Timestamp::from_millis(later.millis() + 1).unwrap();
        assert_eq!(verify_user_token(b"secret", &token, after).unwrap_err(), UserTokenError::Expired);
        let forged = token.replacen(&hex::encode("17850"), &hex::encode("17851"), 1);
        assert_eq!(verify_user_token(b"secret", &forged, now).unwrap_err(), UserTokenError::BadSignature);
        assert_eq!(verify_user_token(b"secret", "garbage", now).unwrap_err(), UserTokenError::Malformed);
    }
}
