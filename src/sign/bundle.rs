//! The `model.sig` file: a Sigstore bundle (v0.3, protobuf-JSON) holding a
//! DSSE envelope whose payload is an in-toto Statement v1 with the
//! model-signing v1.0 predicate (the list of files and their digests).
//!
//! Reading follows the reference verifier (`sign_sigstore_pb.Verifier`,
//! `signing.dsse_payload_to_manifest`) and the DSSE protocol: the signature
//! is checked over the pre-authentication encoding of the *exact* payload
//! bytes, and only after that are those bytes parsed as JSON. Nothing is
//! re-serialized before checking. Writing produces the same shape, so the
//! reference verifier accepts what `modelgate sign` writes.
//!
//! Refused: keyless bundles (a Fulcio certificate and Rekor entries need
//! Sigstore's online trust roots and an identity policy), certificate
//! chains (no root of trust is configured), message-signature bundles, the
//! pre-1.0 `Digests/v0.1` predicate and the v0.2 `pae_compat` encoding.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::SignError;
use super::keys::{PublicKey, SigningKey, TrustedKeys, hex};

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
const LEGACY_PREDICATE_TYPE: &str = "https://model_signing/Digests/v0.1";

/// A bundle lists one signature in practice; a few more are tolerated.
const MAX_SIGNATURES: usize = 16;

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: Material,
    #[serde(skip_serializing_if = "Option::is_none")]
    dsse_envelope: Option<Envelope>,
    #[serde(default, skip_serializing)]
    message_signature: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<PublicKeyId>,
    #[serde(default, skip_serializing)]
    x509_certificate_chain: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    certificate: Option<serde_json::Value>,
    #[serde(default)]
    tlog_entries: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize, Serialize)]
struct PublicKeyId {
    #[serde(default)]
    hint: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Deserialize, Serialize)]
struct EnvelopeSignature {
    sig: String,
    #[serde(default)]
    keyid: Option<String>,
}

/// The in-toto statement inside the envelope.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Predicate,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct Subject {
    pub name: String,
    pub digest: SubjectDigest,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct SubjectDigest {
    pub sha256: String,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct Predicate {
    pub resources: Vec<Resource>,
    pub serialization: Serialization,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct Resource {
    pub algorithm: String,
    pub digest: String,
    pub name: String,
}

/// How the signer hashed the model. Unknown fields are ignored, as the
/// predicate's rules require.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct Serialization {
    pub method: String,
    pub hash_type: String,
    #[serde(default)]
    pub allow_symlinks: serde_json::Value,
    #[serde(default)]
    pub ignore_paths: Vec<String>,
    /// A JSON number; the reference signer writes it as a float (`32.0`)
    /// because protobuf `Struct` numbers are doubles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_size: Option<serde_json::Number>,
}

impl Serialization {
    /// The shard size as an integer, if it is a positive whole number.
    pub fn shard_size(&self) -> Option<u64> {
        let n = self.shard_size.as_ref()?;
        if let Some(u) = n.as_u64() {
            return Some(u);
        }
        let f = n.as_f64()?;
        // 2^53: above it a double no longer holds every integer exactly.
        (f.fract() == 0.0 && f > 0.0 && f <= 9_007_199_254_740_992.0).then_some(f as u64)
    }
}

/// What a bundle whose signature checked out says.
#[derive(Debug)]
pub(crate) struct Opened {
    pub statement: Statement,
    pub key: PublicKey,
}

/// Parses `bytes` as a bundle and checks its DSSE signature against the
/// trusted keys. On success the statement has been parsed and its root
/// digest checked against its resource list.
pub(crate) fn open(bytes: &[u8], keys: &TrustedKeys) -> Result<Opened, SignError> {
    let bundle: Bundle = serde_json::from_slice(bytes)
        .map_err(|e| SignError::Malformed(format!("not a Sigstore bundle: {e}")))?;
    let material = &bundle.verification_material;
    if material.certificate.is_some() || !material.tlog_entries.is_empty() {
        return Err(SignError::Unsupported(
            "this is a keyless Sigstore signature (Fulcio certificate / Rekor transparency log \
             entry); verifying it needs Sigstore's online trust roots and an identity policy, \
             which modelgate does not do offline: verify it with `model_signing verify \
             sigstore`, or re-sign in key mode"
                .into(),
        ));
    }
    if material.x509_certificate_chain.is_some() {
        return Err(SignError::Unsupported(
            "this is a certificate-mode signature (x509 chain); modelgate verifies key-mode \
             signatures only: verify it with `model_signing verify certificate`"
                .into(),
        ));
    }
    // Checked after the material so that older keyless bundles (v0.1, v0.2)
    // are named as keyless rather than as an unknown media type.
    if bundle.media_type != BUNDLE_MEDIA_TYPE {
        return Err(SignError::Malformed(format!(
            "media type {:?}, expected {BUNDLE_MEDIA_TYPE:?}",
            bundle.media_type
        )));
    }
    let Some(public_key) = &material.public_key else {
        return Err(SignError::Malformed(
            "no verification material (publicKey) in the bundle".into(),
        ));
    };
    if bundle.message_signature.is_some() {
        return Err(SignError::Unsupported(
            "message-signature bundles are not model signatures".into(),
        ));
    }
    let Some(envelope) = &bundle.dsse_envelope else {
        return Err(SignError::Malformed(
            "no DSSE envelope in the bundle".into(),
        ));
    };
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(SignError::Malformed(format!(
            "DSSE payload type {:?}, expected {PAYLOAD_TYPE:?}",
            envelope.payload_type
        )));
    }
    if envelope.signatures.is_empty() || envelope.signatures.len() > MAX_SIGNATURES {
        return Err(SignError::Malformed(format!(
            "{} signatures in the envelope",
            envelope.signatures.len()
        )));
    }

    let hint = public_key.hint.as_deref().filter(|h| !h.is_empty());
    let candidates: Vec<&PublicKey> = match hint {
        Some(h) => keys.iter().filter(|k| k.hint() == h).collect(),
        None => keys.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(SignError::KeyMismatch {
            hint: hint.unwrap_or_default().to_string(),
            trusted: keys.iter().map(|k| k.hint().to_string()).collect(),
        });
    }

    let payload = decode_b64(&envelope.payload)
        .ok_or_else(|| SignError::Malformed("DSSE payload is not base64".into()))?;
    let message = pae(PAYLOAD_TYPE, &payload);
    let mut signer = None;
    'outer: for s in &envelope.signatures {
        let Some(sig) = decode_b64(&s.sig) else {
            continue;
        };
        for key in &candidates {
            if key.verify(&message, &sig) {
                signer = Some((*key).clone());
                break 'outer;
            }
        }
    }
    let Some(key) = signer else {
        return Err(SignError::BadSignature);
    };

    let statement = parse_statement(&payload)?;
    Ok(Opened { statement, key })
}

fn parse_statement(payload: &[u8]) -> Result<Statement, SignError> {
    let value: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| SignError::Statement(format!("payload is not JSON: {e}")))?;
    if value.get("predicateType").and_then(|v| v.as_str()) == Some(LEGACY_PREDICATE_TYPE) {
        return Err(SignError::Unsupported(
            "pre-1.0 model-signing signature (predicate Digests/v0.1); re-sign with \
             model-signing 1.x or modelgate sign"
                .into(),
        ));
    }
    let st: Statement = serde_json::from_value(value)
        .map_err(|e| SignError::Statement(format!("not a model-signing statement: {e}")))?;
    if st.type_ != STATEMENT_TYPE {
        return Err(SignError::Statement(format!(
            "statement type {:?}, expected {STATEMENT_TYPE:?}",
            st.type_
        )));
    }
    if st.predicate_type != PREDICATE_TYPE {
        return Err(SignError::Statement(format!(
            "predicate type {:?}, expected {PREDICATE_TYPE:?}",
            st.predicate_type
        )));
    }
    let [subject] = st.subject.as_slice() else {
        return Err(SignError::Statement(format!(
            "{} subjects, expected exactly one",
            st.subject.len()
        )));
    };
    let root = root_digest(&st.predicate.resources)?;
    if !root.eq_ignore_ascii_case(&subject.digest.sha256) {
        return Err(SignError::Statement(format!(
            "the subject digest {} does not match the listed resources (they hash to {root})",
            subject.digest.sha256
        )));
    }
    Ok(st)
}

/// SHA-256 over the raw bytes of each resource digest, in listed order.
pub(crate) fn root_digest(resources: &[Resource]) -> Result<String, SignError> {
    let mut h = Sha256::new();
    for r in resources {
        let raw = unhex(&r.digest).ok_or_else(|| {
            SignError::Statement(format!("digest of {:?} is not hex: {:?}", r.name, r.digest))
        })?;
        h.update(&raw);
    }
    Ok(hex(&h.finalize()))
}

/// DSSE pre-authentication encoding (protocol v1).
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// DSSE allows standard or URL-safe base64.
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(s)
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .ok()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Builds the bundle JSON for a statement, signed with `key`. The payload is
/// the statement pretty-printed with 2-space indents, the layout protobuf's
/// `MessageToJson` gives the reference signer.
pub(crate) fn seal(statement: &Statement, key: &SigningKey) -> Result<String, SignError> {
    let payload = serde_json::to_vec_pretty(statement)
        .map_err(|e| SignError::Statement(format!("cannot encode the statement: {e}")))?;
    let sig = key.sign(&pae(PAYLOAD_TYPE, &payload));
    let bundle = Bundle {
        media_type: BUNDLE_MEDIA_TYPE.into(),
        verification_material: Material {
            public_key: Some(PublicKeyId {
                hint: Some(key.public_key().hint().to_string()),
            }),
            x509_certificate_chain: None,
            certificate: None,
            tlog_entries: Vec::new(),
        },
        dsse_envelope: Some(Envelope {
            payload: STANDARD.encode(&payload),
            payload_type: PAYLOAD_TYPE.into(),
            signatures: vec![EnvelopeSignature {
                sig: STANDARD.encode(&sig),
                keyid: Some(String::new()),
            }],
        }),
        message_signature: None,
    };
    let mut json = serde_json::to_string_pretty(&bundle)
        .map_err(|e| SignError::Statement(format!("cannot encode the bundle: {e}")))?;
    json.push('\n');
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document: payloadType "http://example.com/HelloWorld",
        // payload "hello world".
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn root_digest_is_over_raw_digests_in_order() {
        let r = |d: &str| Resource {
            algorithm: "sha256".into(),
            digest: d.into(),
            name: "x".into(),
        };
        let a = "00".repeat(32);
        let b = "ff".repeat(32);
        let mut raw = vec![0u8; 32];
        raw.extend([0xffu8; 32]);
        assert_eq!(
            root_digest(&[r(&a), r(&b)]).unwrap(),
            hex(&Sha256::digest(&raw))
        );
        assert!(root_digest(&[r("zz")]).is_err());
    }

    #[test]
    fn refuses_keyless_and_certificate_bundles() {
        let keyless = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial":{"certificate":{"rawBytes":"AA=="},"tlogEntries":[{"logIndex":"1"}]},
            "dsseEnvelope":{"payload":"","payloadType":"application/vnd.in-toto+json","signatures":[]}}"#;
        let err = open(keyless, &TrustedKeys::new()).unwrap_err();
        assert!(matches!(err, SignError::Unsupported(ref m) if m.contains("keyless")));
        let cert = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial":{"x509CertificateChain":{"certificates":[]},"tlogEntries":[]},
            "dsseEnvelope":{"payload":"","payloadType":"application/vnd.in-toto+json","signatures":[]}}"#;
        let err = open(cert, &TrustedKeys::new()).unwrap_err();
        assert!(matches!(err, SignError::Unsupported(ref m) if m.contains("certificate")));
        assert!(matches!(
            open(b"{", &TrustedKeys::new()),
            Err(SignError::Malformed(_))
        ));
    }
}
