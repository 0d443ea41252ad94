//! Parsing of public key text as users paste it, and as sshd hands it over (`%t %k`).
//! Anything that is not exactly one acceptable public key is refused with a reason.

use base64ct::{Base64, Base64Unpadded, Encoding};
use sha2::{Digest, Sha256};
use ssh_key::public::KeyData;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Key types we accept; certificates and DSA are not among them.
const ACCEPTED_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no key given: paste one public key line such as 'ssh-ed25519 AAAA... you@host'")]
    Empty,
    #[error("this is a private key: give the public key instead (the .pub file, or 'ssh-keygen -y -f KEY')")]
    PrivateKey,
    #[error("more than one key given: add one key at a time")]
    SeveralKeys,
    #[error("authorized_keys options are not accepted: give only 'TYPE BASE64 [COMMENT]'")]
    Options,
    #[error(
        "DSA keys are not accepted: they are insecure and disabled in OpenSSH; use ssh-ed25519"
    )]
    Dsa,
    #[error("RSA key of {0} bits is too small: at least {MIN_RSA_BITS} bits are required; use ssh-ed25519")]
    RsaTooSmall(usize),
    #[error("SSH certificates are not accepted: give the plain public key")]
    Certificate,
    #[error("unsupported key type {0:?}: use ssh-ed25519, ssh-rsa (2048+ bits) or ecdsa")]
    UnsupportedType(String),
    #[error("the key is not valid base64: it may have been cut or wrapped when copied")]
    BadBase64,
    #[error("the key says it is {declared} but its data is {inner}")]
    TypeMismatch { declared: String, inner: String },
    #[error("the key data is malformed ({0}): copy the whole line of the .pub file")]
    Malformed(String),
    #[error("this is not a public key: paste one line such as 'ssh-ed25519 AAAA... you@host'")]
    NotAKey,
    #[error("this key is in the RFC 4716 (SSH2) form: convert it to one line with 'ssh-keygen -i -f FILE' and add that line")]
    Rfc4716,
}

/// One acceptable public key, in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyEntry {
    key_type: String,
    blob: Vec<u8>,
}

impl PublicKeyEntry {
    /// Parses what a user pastes: one line `TYPE BASE64 [COMMENT]`, surrounding blank lines
    /// allowed, and the byte order mark some Windows editors put first.
    pub fn parse_text(text: &str) -> Result<Self, KeyError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.contains("PRIVATE KEY") {
            return Err(KeyError::PrivateKey);
        }
        if text.contains("---- BEGIN SSH2 PUBLIC KEY ----") {
            return Err(KeyError::Rfc4716);
        }
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines.next().ok_or(KeyError::Empty)?;
        if lines.next().is_some() {
            return Err(KeyError::SeveralKeys);
        }
        let mut fields = line.split_ascii_whitespace();
        let first = fields.next().ok_or(KeyError::Empty)?;
        if !looks_like_key_type(first) {
            return Err(
                if line
                    .split_ascii_whitespace()
                    .skip(1)
                    .any(looks_like_key_type)
                    || first.contains('=')
                {
                    KeyError::Options
                } else {
                    KeyError::NotAKey
                },
            );
        }
        let data = fields
            .next()
            .ok_or_else(|| KeyError::Malformed("the base64 key data is missing".into()))?;
        if fields.clone().any(looks_like_key_type) && fields.clone().any(|f| f.starts_with("AAAA"))
        {
            return Err(KeyError::SeveralKeys);
        }
        Self::parse_parts(first, data)
    }

    /// Parses the key type and base64 data separately, as sshd passes them (`%t %k`).
    pub fn parse_parts(key_type: &str, data: &str) -> Result<Self, KeyError> {
        check_type(key_type)?;
        let blob = Base64::decode_vec(data).map_err(|_| KeyError::BadBase64)?;
        let inner = inner_type(&blob)?;
        if inner != key_type {
            return Err(KeyError::TypeMismatch {
                declared: key_type.to_owned(),
                inner: codebuilder_core::names::printable(inner),
            });
        }
        let key_data = decode_blob(&blob)?;
        if let KeyData::Rsa(rsa) = &key_data {
            let bits = rsa.n.as_positive_bytes().map(bit_length).unwrap_or(0);
            if bits < MIN_RSA_BITS {
                return Err(KeyError::RsaTooSmall(bits));
            }
        }
        Ok(Self {
            key_type: key_type.to_owned(),
            blob,
        })
    }

    pub fn key_type(&self) -> &str {
        &self.key_type
    }

    /// The key data as base64, exactly as it appears in an authorized_keys line.
    pub fn base64(&self) -> String {
        Base64::encode_string(&self.blob)
    }

    /// `SHA256:...`, exactly as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self) -> codebuilder_core::Fingerprint {
        let text = format!(
            "SHA256:{}",
            Base64Unpadded::encode_string(&Sha256::digest(&self.blob))
        );
        codebuilder_core::Fingerprint::parse(&text)
            .expect("a SHA-256 digest is 43 characters of unpadded base64")
    }

    /// The fingerprint as lowercase hex: a file name with no special characters.
    pub fn fingerprint_hex(&self) -> String {
        Sha256::digest(&self.blob)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Turns a `SHA256:...` fingerprint given by a user back into the hex file name form.
pub fn fingerprint_to_hex(fingerprint: &str) -> Option<String> {
    let fingerprint = codebuilder_core::Fingerprint::parse(fingerprint).ok()?;
    let encoded = fingerprint.as_str().strip_prefix("SHA256:")?;
    let digest = Base64Unpadded::decode_vec(encoded).ok()?;
    (digest.len() == 32).then(|| digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn looks_like_key_type(word: &str) -> bool {
    word.starts_with("ssh-") || word.starts_with("ecdsa-") || word.starts_with("sk-")
}

fn check_type(key_type: &str) -> Result<(), KeyError> {
    match key_type {
        t if ACCEPTED_TYPES.contains(&t) => Ok(()),
        "ssh-dss" => Err(KeyError::Dsa),
        t if t.contains("-cert-") => Err(KeyError::Certificate),
        t => Err(KeyError::UnsupportedType(
            codebuilder_core::names::printable(t),
        )),
    }
}

/// The type name stored inside the blob: a length-prefixed string.
fn inner_type(blob: &[u8]) -> Result<&str, KeyError> {
    let malformed = || KeyError::Malformed("the key data is too short".into());
    let len_bytes: [u8; 4] = blob
        .get(..4)
        .ok_or_else(malformed)?
        .try_into()
        .map_err(|_| malformed())?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let name = blob
        .get(4..4usize.checked_add(len).ok_or_else(malformed)?)
        .ok_or_else(malformed)?;
    std::str::from_utf8(name)
        .map_err(|_| KeyError::Malformed("the key type inside the data is not text".into()))
}

fn bit_length(big_endian: &[u8]) -> usize {
    match big_endian.iter().position(|&b| b != 0) {
        Some(i) => (big_endian.len() - i) * 8 - big_endian[i].leading_zeros() as usize,
        None => 0,
    }
}

/// Decodes the whole blob, insisting that nothing trails the key and that it is canonical.
fn decode_blob(blob: &[u8]) -> Result<KeyData, KeyError> {
    let key =
        ssh_key::PublicKey::from_bytes(blob).map_err(|e| KeyError::Malformed(e.to_string()))?;
    let canonical = key
        .to_bytes()
        .map_err(|e| KeyError::Malformed(e.to_string()))?;
    if canonical != blob {
        return Err(KeyError::Malformed(
            "the key is not in canonical form".into(),
        ));
    }
    Ok(key.key_data().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // A real ed25519 key: ssh-keygen -lf prints SHA256:7PfG+CQNEIZ2WnpeJvdjwT5T5SU8r7LQb7G6Lt49RzQ.
    pub const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN5Z04v93e8zqPpJzI9/bmL3plM9SUlV28HtcUsE0mX/ alice@laptop";

    #[test]
    fn parses_and_fingerprints_like_ssh_keygen() {
        let key = PublicKeyEntry::parse_text(&format!("\n{ED25519}\n\n")).unwrap();
        assert_eq!(key.key_type(), "ssh-ed25519");
        assert_eq!(key.base64(), ED25519.split(' ').nth(1).unwrap());
        assert_eq!(
            key.fingerprint().as_str(),
            "SHA256:7PfG+CQNEIZ2WnpeJvdjwT5T5SU8r7LQb7G6Lt49RzQ"
        );
        assert_eq!(
            fingerprint_to_hex(key.fingerprint().as_str()).unwrap(),
            key.fingerprint_hex()
        );
    }

    /// Each type an OpenSSH user may have, with the fingerprint `ssh-keygen -lf` prints for it.
    /// The two security-key lines were written from their wire format (type, key, "ssh:").
    const EVERY_TYPE: &[(&str, &str)] = &[
        (ED25519, "SHA256:7PfG+CQNEIZ2WnpeJvdjwT5T5SU8r7LQb7G6Lt49RzQ"),
        (
            "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPpteXZO5E/33yd78KkAH6a+Z62W/+LSl/jbVkrZOa3of4f65qMNwsCUUN6HdUqg+YpGtcPaRMlZeb9yU4M0qdY= c",
            "SHA256:zfAs5J9ItnG6Cn5qUhVS69EhpkLjdj5QqkKr4EWvSNY",
        ),
        (
            "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBHlyJqEJtFXSefmdUQezGPA66yBqHUQKMI/9Vm/SDALccxqjpc5byzuQ3Mbyr1KWLY0UZjPAJP4lp9tf3dc/mS2uABiudBJs/Knz7aZsIwmOA0mUt2dScMO2FNyE+1IcbQ== c",
            "SHA256:JpfdnF1ZIPFzstEfnQX4BjooYfnG0pAGrgkUskwSQnc",
        ),
        (
            "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAH+PdDMQrrro9ldBZWVnApHgfJJTWFe7fN2w5k9lY9lGOmpyS5wEp+NafHKIauDT7oqMPr6g+zIu0EpYP7omhOhkAFrDoggaxyBMgDH3iJiQ/mBYydAU/7cNdiXvkxxZYKGEBhLAgVw930Pg/5r5C1F8Y2yvUdZr6XGQRxRFKVdb56DzA== c",
            "SHA256:TgjGMnTux+WwQqiW8yoXOqexZL4CrvIFlDJcLXDvOZE",
        ),
        (
            "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIN5Z04v93e8zqPpJzI9/bmL3plM9SUlV28HtcUsE0mX/AAAABHNzaDo= c",
            "SHA256:Hh2TqlU/7/+RHokhwZ3ZqaGQ/iBNDAF1493EFACyw8A",
        ),
        (
            "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBPpteXZO5E/33yd78KkAH6a+Z62W/+LSl/jbVkrZOa3of4f65qMNwsCUUN6HdUqg+YpGtcPaRMlZeb9yU4M0qdYAAAAEc3NoOg== c",
            "SHA256:6gFKfeyEZvQCIsWn0R87+P6fetE+UXsfG/WPWIlCF5o",
        ),
    ];

    #[test]
    fn every_openssh_key_type_is_accepted_with_ssh_keygens_fingerprint() {
        for (line, fingerprint) in EVERY_TYPE {
            let key = PublicKeyEntry::parse_text(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(key.key_type(), line.split(' ').next().unwrap());
            assert_eq!(key.base64(), line.split(' ').nth(1).unwrap());
            assert_eq!(key.fingerprint().as_str(), *fingerprint, "{line}");
        }
    }

    #[test]
    fn a_byte_order_mark_is_ignored_and_rfc_4716_is_explained() {
        let key = PublicKeyEntry::parse_text(&format!("\u{feff}{ED25519}\n")).unwrap();
        assert_eq!(
            key.fingerprint().as_str(),
            "SHA256:7PfG+CQNEIZ2WnpeJvdjwT5T5SU8r7LQb7G6Lt49RzQ"
        );
        let rfc4716 = "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"256-bit ECDSA\"\nAAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPpteXZO5E/33yd78K\nkAH6a+Z62W/+LSl/jbVkrZOa3of4f65qMNwsCUUN6HdUqg+YpGtcPaRMlZeb9yU4M0qdY=\n---- END SSH2 PUBLIC KEY ----\n";
        assert_eq!(PublicKeyEntry::parse_text(rfc4716), Err(KeyError::Rfc4716));
        assert_eq!(
            KeyError::Rfc4716.to_string(),
            "this key is in the RFC 4716 (SSH2) form: convert it to one line with 'ssh-keygen -i -f FILE' and add that line"
        );
    }

    #[test]
    fn refusals() {
        let data = ED25519.split(' ').nth(1).unwrap();
        type Expectation = fn(&KeyError) -> bool;
        let cases: Vec<(String, Expectation)> = vec![
            ("".into(), |e| *e == KeyError::Empty),
            ("  \n\n".into(), |e| *e == KeyError::Empty),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----"
                    .into(),
                |e| *e == KeyError::PrivateKey,
            ),
            (format!("{ED25519}\n{ED25519}"), |e| {
                *e == KeyError::SeveralKeys
            }),
            (format!("{ED25519} {ED25519}"), |e| {
                *e == KeyError::SeveralKeys
            }),
            (format!("command=\"sh\" {ED25519}"), |e| {
                *e == KeyError::Options
            }),
            (format!("restrict,pty {ED25519}"), |e| {
                *e == KeyError::Options
            }),
            (format!("ssh-dss {data}"), |e| *e == KeyError::Dsa),
            (format!("ssh-ed25519-cert-v01@openssh.com {data}"), |e| {
                *e == KeyError::Certificate
            }),
            (format!("ssh-foo {data}"), |e| {
                matches!(e, KeyError::UnsupportedType(_))
            }),
            ("ssh-ed25519 AAAA$$$".into(), |e| *e == KeyError::BadBase64),
            (format!("ssh-ed25519 {}", &data[..data.len() - 4]), |e| {
                matches!(e, KeyError::BadBase64 | KeyError::Malformed(_))
            }),
            (format!("ssh-rsa {data}"), |e| {
                matches!(e, KeyError::TypeMismatch { .. })
            }),
            ("ssh-ed25519".into(), |e| {
                matches!(e, KeyError::Malformed(_))
            }),
            ("hello world".into(), |e| *e == KeyError::NotAKey),
        ];
        for (text, expected) in cases {
            let err = PublicKeyEntry::parse_text(&text).unwrap_err();
            assert!(expected(&err), "{text:?} gave {err:?}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn refuses_trailing_bytes_in_blob() {
        let mut blob = Base64::decode_vec(ED25519.split(' ').nth(1).unwrap()).unwrap();
        blob.push(0);
        let text = format!("ssh-ed25519 {}", Base64::encode_string(&blob));
        assert!(matches!(
            PublicKeyEntry::parse_text(&text),
            Err(KeyError::Malformed(_))
        ));
    }

    #[test]
    fn rsa_size_is_checked() {
        // ssh-rsa blob with e=65537 and a 1024-bit modulus.
        let mut blob = Vec::new();
        for part in [
            b"ssh-rsa".as_slice(),
            &[1, 0, 1],
            &[&[0u8][..], &[0xC5; 128]].concat(),
        ] {
            blob.extend((part.len() as u32).to_be_bytes());
            blob.extend(part);
        }
        let text = format!("ssh-rsa {}", Base64::encode_string(&blob));
        assert_eq!(
            PublicKeyEntry::parse_text(&text),
            Err(KeyError::RsaTooSmall(1024))
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,300}") {
            let _ = PublicKeyEntry::parse_text(&text);
        }

        #[test]
        fn never_panics_on_any_blob(blob in proptest::collection::vec(any::<u8>(), 0..200), ty in "(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256)") {
            let _ = PublicKeyEntry::parse_parts(&ty, &Base64::encode_string(&blob));
            let mut prefixed = Vec::new();
            prefixed.extend((ty.len() as u32).to_be_bytes());
            prefixed.extend(ty.as_bytes());
            prefixed.extend(&blob);
            let _ = PublicKeyEntry::parse_parts(&ty, &Base64::encode_string(&prefixed));
        }
    }
}
