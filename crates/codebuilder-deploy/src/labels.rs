//! The names and labels codebuilder puts on what it makes in the cluster, by which it knows
//! them again.

/// The label of everything codebuilder makes: namespaces, helm releases.
pub(crate) const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub(crate) const CODEBUILDER: &str = "codebuilder";
/// The label that names the app a namespace belongs to.
pub(crate) const APP_LABEL: &str = "codebuilder.io/app";
/// The app's ServiceAccount, its RoleBinding and the ClusterRole they bind (codebuilder.yaml).
pub(crate) const APP_ACCOUNT: &str = "codebuilder-app";
