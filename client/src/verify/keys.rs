//! Public keys come from `sigil-keys`, the one implementation the log, the CA and the client
//! share; re-exported here so verification code names them in one place.

pub use sigil_keys::{
    BadSignature, HashAlg, KeyError, KeyKind, PublicKey, decode_pem, signature_hash_from_oid,
};
