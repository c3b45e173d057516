//! in-toto attestation statements (v0.1 and v1): what a DSSE envelope of payload type
//! `application/vnd.in-toto+json` carries.
//!
//! Parsing is strict, as cosign's is: a field the spec does not define is an error, so a
//! statement that one verifier reads cannot mean something else to another.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
pub const STATEMENT_V0_1: &str = "https://in-toto.io/Statement/v0.1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatementError {
    #[error("in-toto statement is not valid: {0}")]
    Json(String),
    #[error("unsupported in-toto statement type {0:?}")]
    Type(String),
    #[error("in-toto statement has no subject")]
    NoSubject,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<Value>,
}

/// A subject (in v1, a ResourceDescriptor; v0.1 uses only `name` and `digest`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, Value>>,
}

impl Subject {
    /// A subject naming a SHA-256 digest (hex, lowercase).
    pub fn sha256(name: Option<String>, hex: &str) -> Subject {
        Subject {
            name,
            digest: BTreeMap::from([("sha256".to_string(), hex.to_ascii_lowercase())]),
            ..Subject::default()
        }
    }

    pub fn sha256_hex(&self) -> Option<&str> {
        self.digest.get("sha256").map(String::as_str)
    }
}

impl Statement {
    pub fn parse(bytes: &[u8]) -> Result<Statement, StatementError> {
        let s: Statement =
            serde_json::from_slice(bytes).map_err(|e| StatementError::Json(e.to_string()))?;
        if s.statement_type != STATEMENT_V1 && s.statement_type != STATEMENT_V0_1 {
            return Err(StatementError::Type(s.statement_type));
        }
        if s.subject.is_empty() {
            return Err(StatementError::NoSubject);
        }
        Ok(s)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("statements serialise")
    }

    /// Whether some subject names this SHA-256 digest (hex compared case-insensitively).
    pub fn names_sha256(&self, hex: &str) -> bool {
        self.subject
            .iter()
            .filter_map(Subject::sha256_hex)
            .any(|d| d.eq_ignore_ascii_case(hex))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_and_v0_1_and_refuses_unknown_fields() {
        let v1 = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"AB"},"annotations":{"k":"v"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}"#;
        let s = Statement::parse(v1).unwrap();
        assert!(s.names_sha256("ab"));
        assert!(!s.names_sha256("cd"));
        assert_eq!(s.subject[0].annotations.as_ref().unwrap()["k"], "v");
        let v01 = br#"{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"r/x","digest":{"sha256":"ab"}}],"predicateType":"p","predicate":{"a":1}}"#;
        assert_eq!(
            Statement::parse(v01).unwrap().subject[0].name.as_deref(),
            Some("r/x")
        );
        let extra = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"ab"}}],"predicateType":"p","extra":1}"#;
        assert!(matches!(
            Statement::parse(extra),
            Err(StatementError::Json(_))
        ));
        let subject_extra = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"ab"},"x":1}],"predicateType":"p"}"#;
        assert!(Statement::parse(subject_extra).is_err());
        let other_type = br#"{"_type":"https://example.com/Statement","subject":[{"digest":{"sha256":"ab"}}],"predicateType":"p"}"#;
        assert!(matches!(
            Statement::parse(other_type),
            Err(StatementError::Type(_))
        ));
        let empty =
            br#"{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"p"}"#;
        assert_eq!(Statement::parse(empty), Err(StatementError::NoSubject));
    }
}
