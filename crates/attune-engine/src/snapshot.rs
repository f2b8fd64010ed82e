//! The payload format of stored model snapshots: an 8-byte magic naming the kind and its format version, the
//! SHA-256 digest of the body, then the body (postcard, chosen by each kind).

use sha2::{Digest as _, Sha256};

const DIGEST_BYTES: usize = 32;

/// `magic`, the digest of `body`, `body`.
pub fn seal(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(magic.len() + DIGEST_BYTES + body.len());
    payload.extend_from_slice(magic);
    payload.extend_from_slice(&Sha256::digest(body));
    payload.extend_from_slice(body);
    payload
}

/// The body of a payload [`seal`] made with `magic`, or why it is not one (another kind or format, damage).
pub fn unseal<'a>(magic: &[u8; 8], payload: &'a [u8]) -> Result<&'a [u8], &'static str> {
    if payload.len() < magic.len() + DIGEST_BYTES || &payload[..magic.len()] != magic {
        return Err("not a snapshot of this kind and format");
    }
    let (digest, body) = payload[magic.len()..].split_at(DIGEST_BYTES);
    if Sha256::digest(body).as_slice() != digest {
        return Err("the digest does not match");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_body_reads_back_and_damage_or_another_kind_is_refused() {
        let payload = seal(b"ATTEST01", b"body");
        assert_eq!(unseal(b"ATTEST01", &payload), Ok(&b"body"[..]));
        assert!(unseal(b"ATOTHR01", &payload).is_err());
        let mut damaged = payload.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(unseal(b"ATTEST01", &damaged), Err("the digest does not match"));
        assert!(unseal(b"ATTEST01", &payload[..20]).is_err());
    }
}
