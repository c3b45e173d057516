//! A network namespace joined to the test's own by a veth pair. A process started in it
//! reaches PostgreSQL and the other nodes only over that link, so taking the link down is a
//! real partition: packets both ways are dropped, with no FIN and no RST, as behind a cut
//! cable or a frozen switch. A SIGKILL cannot show this: the kernel closes the dead process's
//! connections at once and the database sees it go.
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2's `ip`; PostgreSQL must accept
//! connections on the link's address (`scripts/test` lets it listen on every address and
//! trusts 10.77.0.0/16).

use std::process::Command;

pub struct Namespace {
    name: String,
    inner_link: String,
    /// The link's address on the test's side: PostgreSQL and the other nodes listen here.
    pub host_ip: String,
    /// The address inside the namespace.
    pub inner_ip: String,
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
            "setting up a network namespace for a partition test needs root and iproute2 \
             (ip netns, veth): {e}"
        );
    }
}

impl Namespace {
    pub fn create() -> Namespace {
        // Named after this process, so parallel test runs and a crashed run's leftovers
        // (deleted first) do not collide; interface names are at most 15 bytes.
        let pid = std::process::id();
        let subnet = pid % 250 + 1;
        let ns = Namespace {
            name: format!("sigil-test-{pid}"),
            inner_link: format!("sgn{pid}"),
            host_ip: format!("10.77.{subnet}.1"),
            inner_ip: format!("10.77.{subnet}.2"),
        };
        let host_link = format!("sgh{pid}");
        let _ = ip(&["netns", "del", &ns.name]);
        let _ = ip(&["link", "del", &host_link]);
        must(ip(&["netns", "add", &ns.name]));
        must(ip(&[
            "link",
            "add",
            &host_link,
            "type",
            "veth",
            "peer",
            "name",
            &ns.inner_link,
        ]));
        must(ip(&["link", "set", &ns.inner_link, "netns", &ns.name]));
        must(ip(&[
            "addr",
            "add",
            &format!("{}/24", ns.host_ip),
            "dev",
            &host_link,
        ]));
        must(ip(&["link", "set", &host_link, "up"]));
        must(ns.inside(&[
            "addr",
            "add",
            &format!("{}/24", ns.inner_ip),
            "dev",
            &ns.inner_link,
        ]));
        must(ns.inside(&["link", "set", &ns.inner_link, "up"]));
        must(ns.inside(&["link", "set", "lo", "up"]));
        ns
    }

    fn inside(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// The command that runs a program inside the namespace.
    pub fn exec_prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Takes the link down: from now on nothing crosses it, in either direction.
    pub fn cut(&self) {
        must(self.inside(&["link", "set", &self.inner_link, "down"]));
    }

    /// Brings the link back; connections that survived the silence carry on.
    pub fn heal(&self) {
        must(self.inside(&["link", "set", &self.inner_link, "up"]));
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the other end.
        let _ = ip(&["netns", "del", &self.name]);
    }
}
