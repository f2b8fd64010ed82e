//! Who is calling: the API key in `Authorization: Bearer ...` resolves to a tenant and a key kind; a
//! public key may carry `X-Attune-User-Token` to act for one user. Handlers take a [`Caller`] and ask
//! it for permission; the tenant always comes from the key, never from the request.

use crate::error::{ApiError, ErrorKind};
use crate::state::{AppState, ResolvedKey};
use attune_core::{ApiKeyKind, TenantId, Timestamp, UserId};
use attune_engine::keys::{VerifiedUserToken, hash_api_key, verify_user_token};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

pub const USER_TOKEN_HEADER: &str = "x-attune-user-token";

#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub kind: ApiKeyKind,
    pub key_id: String,
    /// The user a public key acts for, from a valid user token.
    pub acting_user: Option<UserId>,
}

impl Caller {
    pub fn require_secret(&self) -> Result<(), ApiError> {
        match self.kind {
            ApiKeyKind::Secret => Ok(()),
            ApiKeyKind::Public => Err(ApiError::forbidden("this endpoint needs a secret key; a public key was given")),
        }
    }

    /// Whether the caller may read or write data of `user`.
    pub fn require_user(&self, user: &UserId) -> Result<(), ApiError> {
        match (self.kind, &self.acting_user) {
            (ApiKeyKind::Secret, _) => Ok(()),
            (ApiKeyKind::Public, Some(acting)) if acting == user => Ok(()),
            (ApiKeyKind::Public, Some(_)) => {
                Err(ApiError::forbidden("a public key may only act for the user of its user token"))
            }
            (ApiKeyKind::Public, None) => Err(ApiError::forbidden(
                "a public key needs an X-Attune-User-Token for this user (see POST /v1/user-tokens)",
            )),
        }
    }
}

/// Resolve a presented key to its (unrevoked) record and tenant secret.
pub(crate) async fn resolve_key(state: &AppState, key: &str) -> Result<ResolvedKey, ApiError> {
    let secret_hash = hash_api_key(key);
    let resolved = match state.cached_key(&secret_hash) {
        Some(resolved) => resolved,
        None => {
            // Read before the store, so a change announced during the lookup makes this copy stale at once.
            let generation = state.engine.key_generation();
            let lookup_hash = secret_hash.clone();
            let found = state
                .run(move |engine| {
                    let store = engine.store();
                    let Some(record) = store.api_key_by_hash(&lookup_hash)? else { return Ok(None) };
                    let secret = store.user_token_secret(&record.tenant_id)?.unwrap_or_default();
                    Ok(Some(ResolvedKey { record, user_token_secret: secret }))
                })
                .await?;
            let Some(resolved) = found else {
                return Err(ApiError::new(ErrorKind::Unauthenticated, "unknown API key"));
            };
            state.cache_key(secret_hash, resolved.clone(), generation);
            resolved
        }
    };
    if resolved.record.revoked_at.is_some() {
        return Err(ApiError::new(ErrorKind::Unauthenticated, "this API key has been revoked"));
    }
    Ok(resolved)
}

/// Refuses a token issued before its user's tokens were revoked. One store read: an erasure revokes the user's
/// tokens in its transaction, and no token is issued to an erased user, so an erased user's tokens are refused
/// here too.
async fn check_not_revoked(state: &AppState, tenant: &TenantId, token: &VerifiedUserToken) -> Result<(), ApiError> {
    let (tenant, user) = (tenant.clone(), token.user.clone());
    let revoked_before =
        state.run(move |engine| Ok(engine.store().user_tokens_revoked_before(&tenant, &user)?)).await?;
    if revoked_before.is_some_and(|before| token.issued_ms <= before.millis()) {
        return Err(ApiError::new(ErrorKind::Unauthenticated, "this user token has been revoked"));
    }
    Ok(())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or_else(|| {
            ApiError::new(ErrorKind::Unauthenticated, "missing `Authorization: Bearer <api key>` header")
        })?;
        let key = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::new(ErrorKind::Unauthenticated, "the Authorization header must be `Bearer <api key>`")
            })?;
        let resolved = resolve_key(state, key).await?;
        if resolved.record.kind == ApiKeyKind::Public
            && let Err(wait) = state.public_key_limits.check(&resolved.record.key_id)
        {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut error = ApiError::new(
                ErrorKind::RateLimited,
                format!("this public key sent more requests than it may; retry in {seconds} s"),
            );
            error.retry_after = Some(seconds.max(1));
            return Err(error);
        }
        let acting_user = match parts.headers.get(USER_TOKEN_HEADER) {
            None => None,
            Some(token) => {
                let token = token
                    .to_str()
                    .map_err(|_| ApiError::new(ErrorKind::Unauthenticated, "the user token is malformed"))?;
                let verified = verify_user_token(&resolved.user_token_secret, token, Timestamp::now())
                    .map_err(|e| ApiError::new(ErrorKind::Unauthenticated, e.to_string()))?;
                check_not_revoked(state, &resolved.record.tenant_id, &verified).await?;
                Some(verified.user)
            }
        };
        Ok(Caller {
            tenant: resolved.record.tenant_id.clone(),
            kind: resolved.record.kind,
            key_id: resolved.record.key_id.clone(),
            acting_user,
        })
    }
}
