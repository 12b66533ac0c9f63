//! App tokens: who may call, and which models each caller may use.
//!
//! Tokens are kept only as SHA-256 digests. A presented token is hashed and
//! compared with every key's digest in constant time, so neither the match
//! nor its position leaks through timing, and the token itself is never
//! stored, logged or echoed.

use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConfigIssue, FieldPath, KeyConfig, KeyToken};
use crate::error::{ErrorKind, GatewayError};
use crate::gateway::EnvLookup;
use crate::router::Targets;

/// One configured app key: its identity and its limits.
#[derive(Debug)]
pub struct KeyPolicy {
    /// The key's id from config (never the token).
    pub id: Arc<str>,
    digest: [u8; 32],
    allow: Option<Allowlist>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
    /// Requests in flight at once.
    pub max_concurrent: Option<u32>,
    /// Cap on requested output tokens.
    pub max_output_tokens: Option<u32>,
}

/// The models a key may use: exact names (aliases) and `backend/model` globs.
#[derive(Debug)]
struct Allowlist {
    names: Vec<String>,
    globs: GlobSet,
    shown: String,
}

impl Allowlist {
    fn build(entries: &[String], at: &FieldPath) -> Result<Self, ConfigIssue> {
        let mut builder = GlobSetBuilder::new();
        for (index, entry) in entries.iter().enumerate() {
            let glob = Glob::new(entry).map_err(|err| {
                ConfigIssue::new(
                    at.index(index),
                    format!("'{entry}' is not a valid glob: {err}"),
                )
            })?;
            builder.add(glob);
        }
        let globs = builder.build().map_err(|err| {
            ConfigIssue::new(at.clone(), format!("cannot build the allowlist: {err}"))
        })?;
        Ok(Self {
            names: entries.to_vec(),
            globs,
            shown: entries.join(", "),
        })
    }

    /// True when the requested name is listed, or every target it may be
    /// served by matches a glob.
    fn allows(&self, requested: &str, targets: &Targets) -> bool {
        self.names.iter().any(|name| name == requested)
            || targets
                .routes()
                .all(|route| self.globs.is_match(route.qualified_name()))
    }
}

/// Every configured key; empty when the gateway accepts any caller.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<Arc<KeyPolicy>>,
}

impl KeyRing {
    /// Builds the ring from `[[keys]]`, reading `{ env }` tokens through
    /// `env`. Returns the ring (without keys whose token could not be had),
    /// the unset token variables, and the other problems.
    pub fn build(
        keys: &[KeyConfig],
        env: EnvLookup<'_>,
    ) -> (Self, Vec<ConfigIssue>, Vec<ConfigIssue>) {
        let mut unset = Vec::new();
        let mut issues = Vec::new();
        let mut ring = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let at = FieldPath::root().key("keys").index(index);
            let digest = match &key.token {
                KeyToken::Env(var) => match env(&var.env) {
                    Some(token) if !token.is_empty() => Some(sha256(token.as_bytes())),
                    _ => {
                        unset.push(ConfigIssue::new(
                            at.key("token").key("env"),
                            format!(
                                "environment variable {} is not set (key '{}' reads its token \
                                 from it)",
                                var.env, key.id
                            ),
                        ));
                        None
                    }
                },
                KeyToken::Sha256(stored) => match decode_hex(&stored.sha256) {
                    Some(digest) => Some(digest),
                    None => {
                        issues.push(ConfigIssue::new(
                            at.key("token").key("sha256"),
                            "is not 64 hex digits",
                        ));
                        None
                    }
                },
            };
            let allow = if key.models.is_empty() {
                None
            } else {
                match Allowlist::build(&key.models, &at.key("models")) {
                    Ok(allow) => Some(allow),
                    Err(issue) => {
                        issues.push(issue);
                        None
                    }
                }
            };
            if let Some(digest) = digest {
                ring.push(Arc::new(KeyPolicy {
                    id: Arc::from(key.id.as_str()),
                    digest,
                    allow,
                    rpm: key.rpm,
                    tpm: key.tpm,
                    max_concurrent: key.max_concurrent,
                    max_output_tokens: key.max_output_tokens,
                }));
            }
        }
        (Self { keys: ring }, unset, issues)
    }

    /// True when no keys are configured (any caller is accepted).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key `token` belongs to; `None` when no keys are configured. A
    /// missing or unknown token is a 401 that never repeats the token.
    pub fn authenticate(
        &self,
        token: Option<&str>,
    ) -> Result<Option<Arc<KeyPolicy>>, GatewayError> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let Some(token) = token.filter(|token| !token.is_empty()) else {
            return Err(GatewayError::new(
                ErrorKind::Unauthenticated,
                "no API key: send your modelgate key as `Authorization: Bearer <key>` (or \
                 x-api-key, x-goog-api-key)",
            )
            .with_origin(crate::ErrorOrigin::Client));
        };
        let presented = sha256(token.as_bytes());
        // Every digest is compared, so the time taken does not depend on
        // which key (if any) matched.
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&presented)) {
                found = Some(key.clone());
            }
        }
        found.map(Some).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::Unauthenticated,
                "invalid API key: it matches no key configured in this gateway",
            )
            .with_origin(crate::ErrorOrigin::Client)
        })
    }
}

impl KeyPolicy {
    /// 403 unless this key may use `requested` (which resolved to `targets`).
    pub fn check_model(&self, requested: &str, targets: &Targets) -> Result<(), GatewayError> {
        match &self.allow {
            Some(allow) if !allow.allows(requested, targets) => {
                let mut err = GatewayError::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "key '{}' may not use model '{requested}' (it may use: {})",
                        self.id, allow.shown
                    ),
                )
                .with_origin(crate::ErrorOrigin::Client);
                err.param = Some("model".to_owned());
                Err(err)
            }
            _ => Ok(()),
        }
    }

    /// True when this key may use `name` (for filtering model listings).
    pub fn may_list(&self, name: &str, targets: &Targets) -> bool {
        self.allow
            .as_ref()
            .is_none_or(|allow| allow.allows(name, targets))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *slot = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnvCredential, Sha256Token};

    fn key(id: &str, token: KeyToken, models: &[&str]) -> KeyConfig {
        KeyConfig {
            id: id.to_owned(),
            token,
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            rpm: None,
            tpm: None,
            max_concurrent: None,
            max_output_tokens: None,
        }
    }

    #[test]
    fn tokens_from_env_and_sha256_authenticate_and_others_do_not() {
        let real_hex: String = Sha256::digest(b"hashed-token")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let keys = [
            key(
                "env",
                KeyToken::Env(EnvCredential {
                    env: "TOKEN_VAR".into(),
                }),
                &[],
            ),
            key(
                "hashed",
                KeyToken::Sha256(Sha256Token {
                    sha256: real_hex.to_uppercase(),
                }),
                &[],
            ),
        ];
        let env = |name: &str| (name == "TOKEN_VAR").then(|| "env-token".to_owned());
        let (ring, unset, issues) = KeyRing::build(&keys, &env);
        assert!(unset.is_empty() && issues.is_empty());
        let id = |token| {
            ring.authenticate(token)
                .map(|key| key.map(|key| key.id.to_string()))
                .map_err(|err| err.status())
        };
        assert_eq!(id(Some("env-token")), Ok(Some("env".into())));
        assert_eq!(id(Some("hashed-token")), Ok(Some("hashed".into())));
        assert_eq!(id(Some("env-token ")), Err(401));
        assert_eq!(id(Some("")), Err(401));
        assert_eq!(id(None), Err(401));
    }

    #[test]
    fn a_missing_env_token_and_a_bad_glob_are_config_issues() {
        let keys = [
            key(
                "a",
                KeyToken::Env(EnvCredential {
                    env: "UNSET".into(),
                }),
                &[],
            ),
            key(
                "b",
                KeyToken::Sha256(Sha256Token {
                    sha256: "0".repeat(64),
                }),
                &["mock/[x"],
            ),
        ];
        let (_, unset, issues) = KeyRing::build(&keys, &|_| None);
        let paths: Vec<String> = unset
            .iter()
            .chain(&issues)
            .map(|i| i.path.to_string())
            .collect();
        assert_eq!(paths, ["keys[0].token.env", "keys[1].models[0]"]);
    }

    #[test]
    fn an_empty_ring_accepts_anyone() {
        let ring = KeyRing::default();
        assert!(ring.authenticate(None).expect("open").is_none());
        assert!(ring.authenticate(Some("x")).expect("open").is_none());
    }
}
