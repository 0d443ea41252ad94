//! The port of a Dockerfile app: what its image `EXPOSE`s (its own Dockerfile or its base
//! image's), read back from the built image as Deis and Dokku do. It becomes the chart's
//! `port` value: the app's $PORT, its containerPort and the port its readiness is probed on.

use std::collections::BTreeSet;

use crate::engine;

/// The port an app listens on, and the line that tells the pusher where it came from.
#[derive(Debug, PartialEq, Eq)]
pub struct AppPort {
    pub port: u16,
    pub line: String,
}

/// Reads `.Config.ExposedPorts` of `image`; `None` when it exposes no TCP port.
pub fn of_image(docker: &str, image: &str) -> anyhow::Result<Option<AppPort>> {
    let text = engine::inspect_image(docker, image, "{{json .Config.ExposedPorts}}", "the ports")?;
    let exposed: Option<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&text)
        .map_err(|e| {
        anyhow::anyhow!("cannot read the ports of {image} ({e}): check the Docker engine")
    })?;
    Ok(choose(exposed.iter().flatten().map(|(k, _)| k.as_str())))
}

/// The app's port among the image's exposed ports (`8080/tcp`, `53/udp`): the only TCP
/// port, or the lowest of several (a readiness probe and a Service need one); UDP ports
/// cannot be probed and do not count.
pub fn choose<'a>(exposed: impl Iterator<Item = &'a str>) -> Option<AppPort> {
    let tcp: BTreeSet<u16> = exposed
        .filter_map(|spec| {
            let (port, protocol) = spec.split_once('/').unwrap_or((spec, "tcp"));
            (protocol == "tcp").then(|| port.parse().ok()).flatten()
        })
        .filter(|&port| port > 0)
        .collect();
    let port = *tcp.first()?;
    let line = if tcp.len() == 1 {
        format!("Port {port} (EXPOSE in the Dockerfile)")
    } else {
        let others: Vec<String> = tcp.iter().skip(1).map(u16::to_string).collect();
        format!(
            "Port {port} (the lowest EXPOSE in the Dockerfile; not routed: {})",
            others.join(", ")
        )
    };
    Some(AppPort { port, line })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(ports: &[&str]) -> Option<AppPort> {
        choose(ports.iter().copied())
    }

    #[test]
    fn one_port_is_the_app_port() {
        assert_eq!(
            chosen(&["8080/tcp"]),
            Some(AppPort {
                port: 8080,
                line: "Port 8080 (EXPOSE in the Dockerfile)".into()
            })
        );
    }

    #[test]
    fn several_ports_take_the_lowest_tcp_one() {
        assert_eq!(
            chosen(&["8443/tcp", "53/udp", "80/tcp", "9000/tcp"]),
            Some(AppPort {
                port: 80,
                line: "Port 80 (the lowest EXPOSE in the Dockerfile; not routed: 8443, 9000)"
                    .into()
            })
        );
        assert_eq!(chosen(&["53/udp"]), None);
        assert_eq!(chosen(&[]), None);
        assert_eq!(chosen(&["junk/tcp", "0/tcp"]), None);
    }
}
