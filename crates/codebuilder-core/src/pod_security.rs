//! The Pod Security Standards as settings name them: the levels an app namespace can be held
//! to (`CODEBUILDER_POD_SECURITY`) and the controls an operator may except for the values
//! they supply (`CODEBUILDER_POD_SECURITY_ALLOW`). The rules themselves are
//! codebuilder-deploy's (`podsecurity`).

use std::fmt;

/// A Pod Security Standards level, loosest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    const ALL: [Self; 3] = [Self::Privileged, Self::Baseline, Self::Restricted];

    /// As Kubernetes' labels and the setting write it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|level| level.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One control of the Pod Security Standards, named by the pod field it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Control {
    HostProcess,
    HostNetwork,
    HostPid,
    HostIpc,
    Privileged,
    Capabilities,
    HostPath,
    HostPorts,
    AppArmor,
    SeLinux,
    ProcMount,
    Seccomp,
    Sysctls,
    VolumeTypes,
    AllowPrivilegeEscalation,
    RunAsNonRoot,
    RunAsUser,
}

impl Control {
    pub const ALL: [Self; 17] = [
        Self::HostProcess,
        Self::HostNetwork,
        Self::HostPid,
        Self::HostIpc,
        Self::Privileged,
        Self::Capabilities,
        Self::HostPath,
        Self::HostPorts,
        Self::AppArmor,
        Self::SeLinux,
        Self::ProcMount,
        Self::Seccomp,
        Self::Sysctls,
        Self::VolumeTypes,
        Self::AllowPrivilegeEscalation,
        Self::RunAsNonRoot,
        Self::RunAsUser,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|control| control.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HostProcess => "hostProcess",
            Self::HostNetwork => "hostNetwork",
            Self::HostPid => "hostPID",
            Self::HostIpc => "hostIPC",
            Self::Privileged => "privileged",
            Self::Capabilities => "capabilities",
            Self::HostPath => "hostPath",
            Self::HostPorts => "hostPorts",
            Self::AppArmor => "appArmor",
            Self::SeLinux => "seLinux",
            Self::ProcMount => "procMount",
            Self::Seccomp => "seccomp",
            Self::Sysctls => "sysctls",
            Self::VolumeTypes => "volumeTypes",
            Self::AllowPrivilegeEscalation => "allowPrivilegeEscalation",
            Self::RunAsNonRoot => "runAsNonRoot",
            Self::RunAsUser => "runAsUser",
        }
    }

    /// Reads `hostNetwork,hostPorts` (the setting): each name once, empty entries skipped.
    pub fn parse_list(text: &str) -> Option<Vec<Self>> {
        let mut controls: Vec<Self> = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let control = Self::parse(name)?;
            if !controls.contains(&control) {
                controls.push(control);
            }
        }
        Some(controls)
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_loosest_first() {
        assert!(Level::Privileged < Level::Baseline && Level::Baseline < Level::Restricted);
        assert_eq!(Level::parse("baseline"), Some(Level::Baseline));
        assert_eq!(Level::parse("Baseline"), None);
    }

    #[test]
    fn controls_are_named_by_their_field() {
        for control in Control::ALL {
            assert_eq!(Control::parse(control.as_str()), Some(control));
        }
        assert_eq!(
            Control::parse_list(" hostNetwork, hostPorts,,hostNetwork"),
            Some(vec![Control::HostNetwork, Control::HostPorts])
        );
        assert_eq!(Control::parse_list("hostnetwork"), None);
        assert_eq!(Control::parse_list(""), Some(vec![]));
    }
}
