//! A private network of network namespaces: a bridge in the test's own namespace (holding
//! the address PostgreSQL is reached at) and, per node, a namespace joined to the bridge by
//! a veth pair. A process started in a node's namespace reaches PostgreSQL and the other
//! nodes only over its link, so taking the link down is a real partition: packets both ways
//! are dropped, with no FIN and no RST, as behind a cut cable or a frozen switch. A SIGKILL
//! cannot show this: the kernel closes the dead process's connections at once and the
//! database sees it go.
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2's `ip`; PostgreSQL must accept
//! connections on the bridge's address (`scripts/test` lets it listen on every address and
//! trusts 10.77.0.0/16).

use std::process::Command;

pub struct Network {
    tag: String,
    bridge: String,
    subnet: u32,
    namespaces: Vec<String>,
    /// The bridge's address, in the test's namespace: PostgreSQL is reached here.
    pub host_ip: String,
}

/// One node's namespace on the network.
pub struct Host {
    name: String,
    link: String,
    /// The other end of its veth pair, on the bridge in the test's namespace.
    outer: String,
    /// The bridge, and its address (PostgreSQL's).
    bridge: String,
    host_ip: String,
    /// Its address, reachable from the test and from every other host.
    pub ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(result: Result<(), String>) {
    if let Err(e) = result {
        panic!(
            "setting up network namespaces for a partition test needs root and iproute2 \
             (ip netns, veth, bridge): {e}"
        );
    }
}

fn inside(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["netns", "exec", ns, "ip"];
    all.extend_from_slice(args);
    ip(&all)
}

impl Network {
    pub fn create() -> Network {
        // Named after this process, so that parallel test runs do not collide and a crashed
        // run's leftovers can be deleted first; interface names are at most 15 bytes.
        let pid = std::process::id();
        let subnet = pid % 250 + 1;
        let net = Network {
            tag: pid.to_string(),
            bridge: format!("sgb{pid}"),
            subnet,
            namespaces: Vec::new(),
            host_ip: format!("10.77.{subnet}.1"),
        };
        let _ = ip(&["link", "del", &net.bridge]);
        must(ip(&["link", "add", &net.bridge, "type", "bridge"]));
        must(ip(&[
            "addr",
            "add",
            &format!("{}/24", net.host_ip),
            "dev",
            &net.bridge,
        ]));
        must(ip(&["link", "set", &net.bridge, "up"]));
        net
    }

    /// A new namespace on the network, with the next free address.
    pub fn add_host(&mut self) -> Host {
        let n = self.namespaces.len();
        let host = Host {
            name: format!("sigil-test-{}-{n}", self.tag),
            link: format!("sgn{}n{n}", self.tag),
            outer: format!("sgh{}n{n}", self.tag),
            bridge: self.bridge.clone(),
            host_ip: self.host_ip.clone(),
            ip: format!("10.77.{}.{}", self.subnet, n + 2),
        };
        let outer = host.outer.clone();
        let _ = ip(&["netns", "del", &host.name]);
        let _ = ip(&["link", "del", &outer]);
        must(ip(&["netns", "add", &host.name]));
        self.namespaces.push(host.name.clone());
        must(ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &host.link,
        ]));
        must(ip(&["link", "set", &outer, "master", &self.bridge]));
        must(ip(&["link", "set", &outer, "up"]));
        must(ip(&["link", "set", &host.link, "netns", &host.name]));
        must(inside(
            &host.name,
            &["addr", "add", &format!("{}/24", host.ip), "dev", &host.link],
        ));
        must(inside(&host.name, &["link", "set", &host.link, "up"]));
        must(inside(&host.name, &["link", "set", "lo", "up"]));
        host
    }
}

impl Host {
    /// The command that runs a program in this namespace.
    pub fn exec_prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Takes the link down: from now on nothing reaches this host or leaves it. The host
    /// knows it: its route is gone, so a new connection from it fails at once.
    pub fn cut(&self) {
        must(inside(&self.name, &["link", "set", &self.link, "down"]));
    }

    /// Takes the far end of the link down instead, as a failed switch port or a firewall
    /// dropping everything would: the host's own link and route stay, its packets vanish,
    /// and a new connection from it waits for an answer that never comes. The database's
    /// address is pinned in the host's neighbour table first, as a router's would stay
    /// known; otherwise address resolution fails after ~3 s and connections to the database
    /// get "no route to host" instead of silence.
    pub fn cut_silently(&self) {
        let mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", self.bridge))
            .unwrap_or_else(|e| panic!("the bridge's hardware address: {e}"));
        must(inside(
            &self.name,
            &[
                "neigh",
                "replace",
                &self.host_ip,
                "lladdr",
                mac.trim(),
                "dev",
                &self.link,
                "nud",
                "permanent",
            ],
        ));
        must(ip(&["link", "set", &self.outer, "down"]));
    }

    /// Brings the link back, whichever way it was cut; connections that survived the silence
    /// carry on.
    pub fn heal(&self) {
        must(ip(&["link", "set", &self.outer, "up"]));
        must(inside(&self.name, &["link", "set", &self.link, "up"]));
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and with it the other end.
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
