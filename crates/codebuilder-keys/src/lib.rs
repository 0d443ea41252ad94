//! The key store behind sshd's `AuthorizedKeysCommand`.
//!
//! A key's identity is its SHA256 fingerprint. Each key is one file named after the
//! fingerprint, so the lookup sshd runs on every connection opens one file whatever the number
//! of keys; a second small file per name keeps names unique.

pub mod authorized;
pub mod commands;
pub mod declared;
pub mod keytext;
pub mod record;
pub mod store;

pub use keytext::{KeyError, PublicKeyEntry};
pub use record::{KeyRecord, KeySource};
pub use store::{Conflict, ConflictReason, KeySelector, KeyStore, StoreError};
