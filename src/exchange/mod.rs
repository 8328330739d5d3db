//! Partner-region exchange of migrant batches: keys, signatures and verification.
//!
//! A batch is signed as the exact bytes of its JSON document with this region's Ed25519 key;
//! the detached signature travels beside it (`NAME.json.sig`, 128 hex characters). A batch
//! whose signature does not verify against the key configured for its sending region is
//! rejected whole.

pub mod amqp;
mod outbound;

pub use outbound::{build_batch, export, Batch, Export};

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Why a batch was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    MissingSignature(PathBuf),
    MalformedSignature(String),
    UnreadableBatch(String),
    UnknownSender(String),
    BadSignature { sender: String },
    UnknownSchema(String),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::MissingSignature(p) => {
                write!(f, "batch rejected: no signature file {}", p.display())
            }
            Rejection::MalformedSignature(m) => {
                write!(f, "batch rejected: malformed signature ({m})")
            }
            Rejection::UnreadableBatch(m) => {
                write!(f, "batch rejected: cannot read its header ({m})")
            }
            Rejection::UnknownSender(r) => write!(
                f,
                "batch rejected: no partner key configured for sending region '{r}'"
            ),
            Rejection::UnknownSchema(found) => {
                write!(f, "batch rejected: schema '{found}' is not {SCHEMA}")
            }
            Rejection::BadSignature { sender } => {
                write!(f, "batch rejected: signature does not verify against the key of partner region {sender}")
            }
        }
    }
}

/// A partner region and its public key.
#[derive(Debug, Clone)]
pub struct Partner {
    pub region: String,
    pub key: VerifyingKey,
}

/// Writes a new key pair for `region` into `dir`: `REGION.key` (private, hex, mode 0600) and
/// `REGION.pub` (public, hex, to give to partners). Refuses to overwrite a private key.
pub fn generate_keys(dir: &Path, region: &str) -> Result<(PathBuf, PathBuf), KeyError> {
    use rand::RngExt;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| KeyError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let private = dir.join(format!("{region}.key"));
    let public = dir.join(format!("{region}.pub"));
    let mut seed = [0u8; 32];
    rand::rng().fill(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&private).map_err(io(&private))?;
    std::io::Write::write_all(&mut file, format!("{}\n", hex::encode(seed)).as_bytes())
        .map_err(io(&private))?;
    std::fs::write(
        &public,
        format!("{}\n", hex::encode(key.verifying_key().to_bytes())),
    )
    .map_err(io(&public))?;
    Ok((private, public))
}

/// Reads this region's private key; refuses a file others can read.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let invalid = |message: String| KeyError::Invalid {
        path: path.display().to_string(),
        message,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|source| KeyError::Io {
                path: path.display().to_string(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(invalid(format!(
                "private key is readable by others (mode {:o}); chmod 600 it",
                mode & 0o777
            )));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("not a 64-character hex Ed25519 private key".into()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Parses a partner's public key (64 hex characters).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("not a 64-character hex Ed25519 public key")?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not a valid Ed25519 public key: {e}"))
}

/// The detached signature of a batch, as written beside it.
pub fn sign(key: &SigningKey, batch: &[u8]) -> String {
    hex::encode(key.sign(batch).to_bytes()) + "\n"
}

/// The signature file of a batch file: `NAME.json.sig`.
pub fn signature_path(batch: &Path) -> PathBuf {
    let mut name = batch.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// The batch format this version reads and writes (SPEC.md section 4).
pub const SCHEMA: &str = "migrant-exchange/1";

#[derive(serde::Deserialize)]
struct Header {
    from: String,
    #[serde(default)]
    schema: String,
}

/// Verifies a batch file against the key of the region it says it comes from; returns that region.
pub fn verify_batch_file(batch: &Path, partners: &[Partner]) -> Result<String, Rejection> {
    let bytes = std::fs::read(batch).map_err(|e| Rejection::UnreadableBatch(e.to_string()))?;
    let sig_path = signature_path(batch);
    let sig_text = std::fs::read_to_string(&sig_path)
        .map_err(|_| Rejection::MissingSignature(sig_path.clone()))?;
    verify_batch(&bytes, &sig_text, partners)
}

pub fn verify_batch(
    bytes: &[u8],
    signature_hex: &str,
    partners: &[Partner],
) -> Result<String, Rejection> {
    let header: Header =
        serde_json::from_slice(bytes).map_err(|e| Rejection::UnreadableBatch(e.to_string()))?;
    let partner = partners
        .iter()
        .find(|p| p.region == header.from)
        .ok_or_else(|| Rejection::UnknownSender(header.from.clone()))?;
    let raw = hex::decode(signature_hex.trim())
        .map_err(|e| Rejection::MalformedSignature(e.to_string()))?;
    let signature =
        Signature::from_slice(&raw).map_err(|e| Rejection::MalformedSignature(e.to_string()))?;
    partner
        .key
        .verify_strict(bytes, &signature)
        .map_err(|_| Rejection::BadSignature {
            sender: header.from.clone(),
        })?;
    // The schema is judged only once the bytes are known to be the sender's: a changed byte
    // anywhere, the schema field included, is reported as what it is, a broken signature.
    if header.schema != SCHEMA {
        return Err(Rejection::UnknownSchema(header.schema));
    }
    Ok(header.from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH: &[u8] = br#"{"schema": "migrant-exchange/1", "message_id": "m-1", "from": "320411", "to": "410600", "records": []}"#;

    fn keys(dir: &Path) -> (SigningKey, Partner) {
        let (private, public) = generate_keys(dir, "320411").unwrap();
        let key = load_signing_key(&private).unwrap();
        let partner = Partner {
            region: "320411".into(),
            key: parse_public_key(&std::fs::read_to_string(public).unwrap()).unwrap(),
        };
        (key, partner)
    }

    #[test]
    fn a_signed_batch_verifies_and_any_changed_byte_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (key, partner) = keys(dir.path());
        let sig = sign(&key, BATCH);
        assert_eq!(
            verify_batch(BATCH, &sig, std::slice::from_ref(&partner)),
            Ok("320411".into())
        );
        let mut tampered = BATCH.to_vec();
        let at = tampered.iter().position(|&b| b == b'm').unwrap();
        tampered[at] = b'n';
        assert_eq!(
            verify_batch(&tampered, &sig, &[partner]),
            Err(Rejection::BadSignature {
                sender: "320411".into()
            })
        );
    }

    #[test]
    fn a_batch_from_an_unknown_region_or_signed_by_another_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (_, partner) = keys(&dir.path().join("a"));
        let (other, _) = keys(&dir.path().join("b"));
        let sig = sign(&other, BATCH);
        assert_eq!(
            verify_batch(BATCH, &sig, std::slice::from_ref(&partner)),
            Err(Rejection::BadSignature {
                sender: "320411".into()
            })
        );
        let stranger = Partner {
            region: "110105".into(),
            key: partner.key,
        };
        assert_eq!(
            verify_batch(BATCH, &sig, &[stranger]),
            Err(Rejection::UnknownSender("320411".into()))
        );
        assert!(matches!(
            verify_batch(BATCH, "zz", &[partner]),
            Err(Rejection::MalformedSignature(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn private_keys_are_written_0600_and_refused_when_others_can_read_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (private, _) = generate_keys(dir.path(), "410600").unwrap();
        assert_eq!(
            std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            generate_keys(dir.path(), "410600").is_err(),
            "never overwrites a private key"
        );
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_signing_key(&private)
            .unwrap_err()
            .to_string()
            .contains("chmod 600"));
    }
}
